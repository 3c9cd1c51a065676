# graft — build, test, bench, demo.  `make help` lists the targets.
CC      ?= cc
PKGS    := hdf5 libpng libjpeg libcurl json-c libarchive zlib
HDF5INC := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -fopenmp \
                 -Iinclude -Isrc $(HDF5INC)
LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ldnnl -lopenblas -lcrypto -lm -lpthread -fopenmp

OPT_CFLAGS ?= -O2 -march=x86-64-v3
SAN_CFLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC  := $(shell find src -name '*.c' -not -path 'src/cli/*' | sort)
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
EX_SRC   := $(sort $(wildcard examples/*.c))
HDRS     := $(shell find include src tests -name '*.h')

# Build directories (helpers working side by side pass their own: make B=/tmp/x/build SB=/tmp/x/san)
B  ?= build
SB ?= build-san

# $(call objs,DIR,SOURCES)
objs = $(patsubst %.c,$(1)/obj/%.o,$(2))

.SECONDARY:
.PHONY: examples all deps deps-test test test-fast test-san bench demo clean help fixtures
all: deps $(B)/graft $(B)/libgraft.a $(B)/tests-built examples

help:
	@echo "make          build $(B)/graft, $(B)/libgraft.a, tests and examples"
	@echo "make test     install missing packages, build, run every test (also under ASan+UBSan)"
	@echo "make bench    benchmarks against PyTorch (prints ratios)"
	@echo "make demo     the main job on the embedded default"

deps:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh all

# ---- release build (build/) ----
$(B)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "CC $<"; $(CC) $(CFLAGS_COMMON) $(OPT_CFLAGS) -c $< -o $@
$(B)/libgraft.a: $(call objs,$(B),$(LIB_SRC))
	@rm -f $@; ar rcs $@ $^
$(B)/graft: $(call objs,$(B),$(CLI_SRC)) $(B)/libgraft.a
	@echo "LD $@"; $(CC) $(OPT_CFLAGS) -o $@ $(call objs,$(B),$(CLI_SRC)) $(B)/libgraft.a $(LIBS)
$(B)/tests/%: $(B)/obj/tests/%.o $(B)/libgraft.a
	@mkdir -p $(dir $@)
	@echo "LD $@"; $(CC) $(OPT_CFLAGS) -o $@ $< $(B)/libgraft.a $(LIBS)
$(B)/examples/%: $(B)/obj/examples/%.o $(B)/libgraft.a
	@mkdir -p $(dir $@)
	@echo "LD $@"; $(CC) $(OPT_CFLAGS) -o $@ $< $(B)/libgraft.a $(LIBS)
$(B)/tests-built: $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRC))
	@touch $@
examples: $(patsubst examples/%.c,$(B)/examples/%,$(EX_SRC))

# ---- sanitizer build ($(SB)/) ----
$(SB)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "CC(san) $<"; $(CC) $(CFLAGS_COMMON) $(SAN_CFLAGS) -c $< -o $@
$(SB)/libgraft.a: $(call objs,$(SB),$(LIB_SRC))
	@rm -f $@; ar rcs $@ $^
$(SB)/graft: $(call objs,$(SB),$(CLI_SRC)) $(SB)/libgraft.a
	@echo "LD(san) $@"; $(CC) $(SAN_CFLAGS) -o $@ $(call objs,$(SB),$(CLI_SRC)) $(SB)/libgraft.a $(LIBS)
$(SB)/tests/%: $(SB)/obj/tests/%.o $(SB)/libgraft.a
	@mkdir -p $(dir $@)
	@echo "LD(san) $@"; $(CC) $(SAN_CFLAGS) -o $@ $< $(SB)/libgraft.a $(LIBS)
$(SB)/tests-built: $(patsubst tests/%.c,$(SB)/tests/%,$(TEST_SRC)) $(SB)/graft
	@touch $@

# ---- tests ----
test: deps-test $(B)/graft $(B)/tests-built examples $(SB)/tests-built
	@B=$(B) SB=$(SB) tests/run.sh

test-fast: $(B)/graft $(B)/tests-built
	@GRAFT_TEST_NO_SAN=1 B=$(B) tests/run.sh

bench: deps-test $(B)/graft
	@bench/run.sh

demo: deps $(B)/graft
	@scripts/demo.sh

clean:
	rm -rf $(B) $(SB)
