# graft — build, test, install, bench, demo.  `make help` lists the targets.
#
# On a fresh Debian/Ubuntu the first make installs the missing packages
# (scripts/deps.sh, apt-get) and only then reads the compile flags from
# pkg-config (scripts/configure.sh writes them to $(B)/config.mk, which make
# remakes before anything else), so `make demo` works as the first command.
# NO_DEPS=1 skips the installation (packagers, machines without apt).
#
# User variables: CC CXX CFLAGS LDFLAGS LDLIBS PREFIX DESTDIR BINDIR LIBDIR
# INCLUDEDIR MANDIR; NATIVE=1 tunes for this CPU (the default runs on any
# x86-64); WERROR=1 turns warnings into errors (make test and CI do).

VERSION := $(shell sed -n 's/^\#define GRAFT_VERSION "\(.*\)"/\1/p' include/graft.h)
MAJOR   := $(word 1,$(subst ., ,$(VERSION)))

CXX        ?= c++
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
CFLAGS     ?= -O2 -g
NATIVE     ?= 0
WERROR     ?= 0

# MPI=1: the data-parallel build (src/dist over Open MPI: pkg-config ompi-c,
# -DGRAFT_MPI; run it under mpirun), in its own directory build-mpi.  The
# default build links no MPI library; `make test` also builds $(MB) and runs
# tests/test_mpi.sh when Open MPI is installed (scripts/deps.sh test list).
MPI ?= 0
ifeq ($(MPI),1)
B  ?= build-mpi
SB ?= build-mpi-san
endif
# Build directories (helpers working side by side pass their own: make B=/tmp/x/build SB=/tmp/x/san)
B  ?= build
SB ?= build-san

.DEFAULT_GOAL := all

# ---- configuration: packages first, then pkg-config ----
NO_CONFIG_GOALS := clean help uninstall fresh-demo fresh-test test-fresh deps deps-test
ifneq ($(filter-out $(NO_CONFIG_GOALS),$(or $(MAKECMDGOALS),all)),)
include $(B)/config.mk
endif

$(B)/config.mk: scripts/configure.sh scripts/deps.sh
	@mkdir -p $(B)
	@if [ "$(NO_DEPS)" != 1 ]; then scripts/deps.sh build; fi
	@scripts/configure.sh > $@.tmp && mv $@.tmp $@

# Flags graft needs (always), then the user's CFLAGS (optimisation, debug).
WARN    := -Wall -Wextra -Wformat=2 -Wshadow -Wmissing-prototypes
ifeq ($(WERROR),1)
WERROR_FLAG := -Werror
endif
ifeq ($(NATIVE),1)
ARCH    := -march=native
endif
GR_CFLAGS := -std=c11 -D_GNU_SOURCE -fopenmp -fPIC -fvisibility=hidden -Iinclude -Isrc \
             $(PKG_CFLAGS) $(WARN) $(ARCH) -MMD -MP
GR_LIBS   := $(PKG_LIBS) -lm -lpthread -fopenmp
ifeq ($(MPI),1)
ifneq ($(filter-out $(NO_CONFIG_GOALS),$(or $(MAKECMDGOALS),all)),)
ifneq ($(shell pkg-config --exists ompi-c && echo yes),yes)
$(error MPI=1 needs Open MPI's development files: apt-get install libopenmpi-dev openmpi-bin)
endif
endif
GR_CFLAGS += $(shell pkg-config --cflags ompi-c) -DGRAFT_MPI
GR_LIBS   += $(shell pkg-config --libs ompi-c)
endif
MB ?= $(B)-mpi
SAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC  := $(shell find src -name '*.c' -not -path 'src/cli/*' | sort)
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
EX_SRC   := $(sort $(wildcard examples/*.c))
COMMANDS := fetch info extract predict train eval probe report export cache

# $(call objs,DIR,SOURCES)
objs = $(patsubst %.c,$(1)/obj/%.o,$(2))

# Objects are rebuilt when the compile line changes (CFLAGS, NATIVE...; not
# -Werror, which changes no object).
flags_stamp = $(shell mkdir -p $(1) && printf '%s\n' '$(2)' | cmp -s - $(1)/.flags || printf '%s\n' '$(2)' > $(1)/.flags; echo $(1)/.flags)
REL_FLAGS := $(CC) $(GR_CFLAGS) $(CFLAGS)
SAN_FLAGS := $(CC) $(GR_CFLAGS) $(SAN_CFLAGS)

.SECONDARY:
.PHONY: all examples deps deps-test test check test-fast mpi-build test-faults test-san bench demo clean help install \
        uninstall install-files fresh-demo fresh-test test-fresh man check-layers
all: $(B)/graft $(B)/libgraft.a $(B)/libgraft.so $(B)/tests-built examples man

help:
	@echo "make              build $(B)/graft, libgraft (.a, .so), tests, examples, man pages"
	@echo "make demo         install missing packages, build, run the main job on the embedded default"
	@echo "make test         install missing packages (incl. PyTorch for the oracles), build with -Werror,"
	@echo "                  run every test (also under ASan+UBSan)"
	@echo "make test-faults  kill -9 a training run at 50 moments (resume bit-identical), disk full,"
	@echo "                  every allocation of train/eval failed in turn (tests/test_nomem.sh)"
	@echo "make install      install into \$$(DESTDIR)\$$(PREFIX) (default /usr/local): graft, libgraft.so.$(VERSION),"
	@echo "                  libgraft.a, graft.h, graft.pc, man pages, bash completion;  make uninstall"
	@echo "make fresh-demo   the README's first command on a fresh minimal Debian (debootstrap chroot; root)"
	@echo "make test-fresh   the README's second command there (slow: installs PyTorch)"
	@echo "make bench        benchmarks against PyTorch (prints ratios)"
	@echo "make check-layers the library's layers depend one way, no include cycle (scripts/check_layers.py)"
	@echo "make MPI=1        the MPI (data-parallel) build in build-mpi/: mpirun -np N build-mpi/graft train ..."
	@echo "variables: PREFIX DESTDIR CC CFLAGS LDFLAGS NATIVE=1 WERROR=1 NO_DEPS=1 MPI=1 B=builddir"

check-layers:
	@python3 scripts/check_layers.py

deps:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh all

# ---- release build ($(B)/) ----
$(B)/obj/%.o: %.c $(call flags_stamp,$(B),$(REL_FLAGS)) | $(B)/config.mk
	@mkdir -p $(dir $@)
	@echo "CC $<"; $(CC) $(GR_CFLAGS) $(WERROR_FLAG) $(CFLAGS) -c $< -o $@
$(B)/libgraft.a: $(call objs,$(B),$(LIB_SRC))
	@rm -f $@; ar rcs $@ $^
$(B)/libgraft.so.$(VERSION): $(call objs,$(B),$(LIB_SRC))
	@echo "LD $@"; $(CC) -shared -Wl,-soname,libgraft.so.$(MAJOR) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(GR_LIBS) $(LDLIBS)
$(B)/libgraft.so: $(B)/libgraft.so.$(VERSION)
	@ln -sf libgraft.so.$(VERSION) $(B)/libgraft.so.$(MAJOR); ln -sf libgraft.so.$(VERSION) $@
$(B)/graft: $(call objs,$(B),$(CLI_SRC)) $(B)/libgraft.a
	@echo "LD $@"; $(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(call objs,$(B),$(CLI_SRC)) $(B)/libgraft.a $(GR_LIBS) $(LDLIBS)
$(B)/tests/%: $(B)/obj/tests/%.o $(B)/libgraft.a
	@mkdir -p $(dir $@)
	@echo "LD $@"; $(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libgraft.a $(GR_LIBS) $(LDLIBS)
$(B)/examples/%: $(B)/obj/examples/%.o $(B)/libgraft.a
	@mkdir -p $(dir $@)
	@echo "LD $@"; $(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libgraft.a $(GR_LIBS) $(LDLIBS)
$(B)/tests-built: $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRC))
	@touch $@
examples: $(patsubst examples/%.c,$(B)/examples/%,$(EX_SRC))

# Man pages: help2man over the same text `--help` prints, so they cannot drift.
MAN_PAGES := $(B)/man/graft.1 $(patsubst %,$(B)/man/graft-%.1,$(COMMANDS))
man: $(MAN_PAGES)
$(B)/man/graft.1: $(B)/graft scripts/man.sh
	@scripts/man.sh $(B)/graft "" $@
$(B)/man/graft-%.1: $(B)/graft scripts/man.sh
	@scripts/man.sh $(B)/graft $* $@

# ---- sanitizer build ($(SB)/) ----
$(SB)/obj/%.o: %.c $(call flags_stamp,$(SB),$(SAN_FLAGS)) | $(B)/config.mk
	@mkdir -p $(dir $@)
	@echo "CC(san) $<"; $(CC) $(GR_CFLAGS) $(WERROR_FLAG) $(SAN_CFLAGS) -c $< -o $@
$(SB)/libgraft.a: $(call objs,$(SB),$(LIB_SRC))
	@rm -f $@; ar rcs $@ $^
$(SB)/graft: $(call objs,$(SB),$(CLI_SRC)) $(SB)/libgraft.a
	@echo "LD(san) $@"; $(CC) $(SAN_CFLAGS) $(LDFLAGS) -o $@ $(call objs,$(SB),$(CLI_SRC)) $(SB)/libgraft.a $(GR_LIBS) $(LDLIBS)
$(SB)/tests/%: $(SB)/obj/tests/%.o $(SB)/libgraft.a
	@mkdir -p $(dir $@)
	@echo "LD(san) $@"; $(CC) $(SAN_CFLAGS) $(LDFLAGS) -o $@ $< $(SB)/libgraft.a $(GR_LIBS) $(LDLIBS)
$(SB)/tests-built: $(patsubst tests/%.c,$(SB)/tests/%,$(TEST_SRC)) $(SB)/graft
	@touch $@

# ---- ThreadSanitizer build ($(TB)/): the tests that run threads (the batcher's
# loader threads, the OpenMP pool, the CLI's signal thread), run by make check.
# clang + LLVM's libomp, whose Archer tool (libarcher, which libomp loads by
# itself into a TSan program) tells TSan about OpenMP's barriers and tasks:
# GCC's libgomp is not instrumented, so every parallel region would be a
# false report there.  oneDNN's OpenMP calls bind to libomp too (it comes
# first in the link order).
TB ?= build-tsan
TSAN_CC ?= clang
TSAN_CFLAGS := -O1 -g -fsanitize=thread -fno-omit-frame-pointer -Wno-pass-failed
TSAN_FLAGS := $(TSAN_CC) $(GR_CFLAGS) $(TSAN_CFLAGS)
TSAN_TESTS := test_dataset test_fit test_features_cache test_probe
$(TB)/obj/%.o: %.c $(call flags_stamp,$(TB),$(TSAN_FLAGS)) | $(B)/config.mk
	@mkdir -p $(dir $@)
	@echo "CC(tsan) $<"; $(TSAN_CC) $(GR_CFLAGS) $(TSAN_CFLAGS) -c $< -o $@
$(TB)/libgraft.a: $(call objs,$(TB),$(LIB_SRC))
	@rm -f $@; ar rcs $@ $^
$(TB)/graft: $(call objs,$(TB),$(CLI_SRC)) $(TB)/libgraft.a
	@echo "LD(tsan) $@"; $(TSAN_CC) $(TSAN_CFLAGS) $(LDFLAGS) -o $@ $(call objs,$(TB),$(CLI_SRC)) $(TB)/libgraft.a $(GR_LIBS) $(LDLIBS)
$(TB)/tests/%: $(TB)/obj/tests/%.o $(TB)/libgraft.a
	@mkdir -p $(dir $@)
	@echo "LD(tsan) $@"; $(TSAN_CC) $(TSAN_CFLAGS) $(LDFLAGS) -o $@ $< $(TB)/libgraft.a $(GR_LIBS) $(LDLIBS)
$(TB)/tests-built: $(patsubst %,$(TB)/tests/%,$(TSAN_TESTS)) $(TB)/graft
	@touch $@

-include $(shell find $(B)/obj $(SB)/obj $(TB)/obj -name '*.d' 2>/dev/null)

# ---- tests ----
# make test = the README's test command: warnings are errors here.
test:
	@$(MAKE) --no-print-directory WERROR=1 check
# the MPI build tests/test_mpi.sh runs (where Open MPI is installed): rebuilt
# by every test target, so that it never runs a stale binary
mpi-build:
	@if [ "$(MPI)" != 1 ] && pkg-config --exists ompi-c && command -v mpirun >/dev/null; then \
	    $(MAKE) --no-print-directory MPI=1 B=$(MB) SB=$(MB)-san $(MB)/graft || exit 1; fi

check: deps-test $(B)/graft $(B)/libgraft.so $(B)/tests-built examples man $(SB)/tests-built $(TB)/tests-built mpi-build
	@if command -v $(FUZZ_CC) >/dev/null; then $(MAKE) --no-print-directory fuzz-build || exit 1; fi
	@B=$(B) SB=$(SB) TB=$(TB) FB=$(FB) GRAFT_MPI_BIN=$(abspath $(MB))/graft tests/run.sh

test-fast: $(B)/graft $(B)/libgraft.so $(B)/tests-built examples man mpi-build
	@GRAFT_TEST_NO_SAN=1 B=$(B) GRAFT_MPI_BIN=$(abspath $(MB))/graft tests/run.sh

# kill -9 at 50 moments of a training run, then disk full (tests/test_faults.sh; make test runs 5 trials)
test-faults: $(B)/graft
	@FAULT_TRIALS=$${FAULT_TRIALS:-50} GRAFT_BIN=$(CURDIR)/$(B)/graft bash tests/test_faults.sh
	@NOMEM_STRIDE=1 NOMEM_FULL=1 GRAFT_BIN=$(CURDIR)/$(B)/graft bash tests/test_nomem.sh

bench: deps-test $(B)/graft
	@bench/run.sh

demo: $(B)/graft
	@scripts/demo.sh

# The README's two commands on a fresh minimal Debian (debootstrap chroot; needs root).
fresh-demo:
	@scripts/fresh.sh demo
test-fresh fresh-test:
	@scripts/fresh.sh test

# ---- install ----
install: $(B)/graft $(B)/libgraft.a $(B)/libgraft.so man
	@$(MAKE) --no-print-directory install-files
install-files:
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	install -m 755 $(B)/graft $(DESTDIR)$(BINDIR)/graft
	install -m 755 $(B)/libgraft.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libgraft.so.$(VERSION)
	ln -sf libgraft.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libgraft.so.$(MAJOR)
	ln -sf libgraft.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libgraft.so
	install -m 644 $(B)/libgraft.a $(DESTDIR)$(LIBDIR)/libgraft.a
	install -m 644 include/graft.h $(DESTDIR)$(INCLUDEDIR)/graft.h
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|; s|@LIBS_PRIVATE@|$(PKG_LIBS_PRIVATE)|' \
	    scripts/graft.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/graft.pc
	install -m 644 $(MAN_PAGES) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 scripts/graft.bash-completion $(DESTDIR)$(BASHCOMPDIR)/graft
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/graft $(DESTDIR)$(LIBDIR)/libgraft.so.$(VERSION) \
	      $(DESTDIR)$(LIBDIR)/libgraft.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libgraft.so \
	      $(DESTDIR)$(LIBDIR)/libgraft.a $(DESTDIR)$(INCLUDEDIR)/graft.h \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/graft.pc $(DESTDIR)$(BASHCOMPDIR)/graft \
	      $(patsubst $(B)/man/%,$(DESTDIR)$(MANDIR)/man1/%,$(MAN_PAGES))

clean:
	rm -rf $(B) $(SB) $(TB)

# ---- fuzzing (fuzz/; see README "Fuzzing") ----
# make fuzz T=<target> SECONDS=<n>   build with clang + libFuzzer + ASan/UBSan into $(FB)/ and run one target
# make fuzz-all SECONDS=<n>          each target in turn, n seconds each
# make fuzz-merge T=<target>         minimize the run's new inputs into the committed corpus fuzz/corpus/<target>
# make fuzz-regress                  fuzz/regress + fuzz/corpus through the normal build (make check runs them)
# make test also builds the targets (when clang is installed) and runs each for 20 s on
#   fuzz/corpus/<target> (tests/test_fuzz_ci.sh; GRAFT_FUZZ_SECONDS=<n> changes it, 0 skips)
# Targets run from the repository root (they read fixtures by relative path).
FB      ?= build-fuzz
FUZZ_CC ?= clang
T       ?= safetensors
SECONDS ?= 60
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_CFLAGS  := -O1 -g -fno-omit-frame-pointer -Wno-pass-failed -fsanitize=address,undefined \
                -fno-sanitize-recover=undefined
FUZZ_OPTS    ?= -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
.PHONY: fuzz fuzz-all fuzz-build fuzz-regress fuzz-seeds fuzz-merge

$(FB)/obj/%.o: %.c | $(B)/config.mk
	@mkdir -p $(dir $@)
	@echo "CC(fuzz) $<"; $(FUZZ_CC) $(GR_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FB)/libgraft.a: $(call objs,$(FB),$(LIB_SRC))
	@rm -f $@; ar rcs $@ $^
$(FB)/fuzz_%: $(FB)/obj/fuzz/fuzz_%.o $(FB)/libgraft.a
	@echo "LD(fuzz) $@"; $(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FB)/libgraft.a $(GR_LIBS)
$(FB)/make_seeds: $(FB)/obj/fuzz/make_seeds.o $(FB)/libgraft.a
	@echo "LD(fuzz) $@"; $(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FB)/libgraft.a $(GR_LIBS)
-include $(shell find $(FB)/obj -name '*.d' 2>/dev/null)
fuzz-build: $(patsubst %,$(FB)/fuzz_%,$(FUZZ_TARGETS))
$(FB)/seeds/.made: $(FB)/make_seeds fuzz/make_seeds.sh fuzz/gen_tflite_seed.py
	@FB=$(FB) fuzz/make_seeds.sh
	@touch $@
fuzz-seeds: $(FB)/seeds/.made

# one target: new inputs go to $(FB)/corpus/T; seeds: fuzz/corpus/T (committed) and $(FB)/seeds/T (generated)
fuzz: $(FB)/fuzz_$(T) $(FB)/seeds/.made
	@mkdir -p $(FB)/corpus/$(T) $(FB)/crashes/$(T) fuzz/corpus/$(T)
	@echo "fuzz $(T) for $(SECONDS) s (log: $(FB)/$(T).log)"
	@ASAN_OPTIONS=detect_leaks=1 OMP_WAIT_POLICY=PASSIVE nice -n 5 $(FB)/fuzz_$(T) $(FUZZ_OPTS) \
	    -max_total_time=$(SECONDS) -artifact_prefix=$(FB)/crashes/$(T)/ \
	    $(FB)/corpus/$(T) fuzz/corpus/$(T) $(FB)/seeds/$(T) >$(FB)/$(T).log 2>&1; \
	  rc=$$?; grep -E '^(#[0-9]+.(INITED|DONE)|stat::|Done [0-9]+ runs)|ERROR|SUMMARY' $(FB)/$(T).log | grep -v 'INFO' | tail -12; \
	  ls $(FB)/crashes/$(T) | head; exit $$rc
# minimize what a run found (plus the seeds, inputs cut to 4 KB) into the committed corpus fuzz/corpus/T (make check runs it)
fuzz-merge: $(FB)/fuzz_$(T) $(FB)/seeds/.made
	@mkdir -p fuzz/corpus/$(T)
	@$(FB)/fuzz_$(T) -merge=1 $(FUZZ_OPTS) -max_len=4096 fuzz/corpus/$(T) $(FB)/corpus/$(T) $(FB)/seeds/$(T) 2>&1 | grep -E 'MERGE-OUTER: [0-9]+ new files' || true
fuzz-all: fuzz-build $(FB)/seeds/.made
	@for t in $(FUZZ_TARGETS); do $(MAKE) --no-print-directory fuzz T=$$t SECONDS=$(SECONDS) || exit 1; done

# regression driver: each target's LLVMFuzzerTestOneInput + fuzz/standalone_main.c, normal compilers
$(B)/fuzz/run_%: $(B)/obj/fuzz/fuzz_%.o $(B)/obj/fuzz/standalone_main.o $(B)/libgraft.a
	@mkdir -p $(dir $@)
	@echo "LD $@"; $(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(GR_LIBS) $(LDLIBS)
$(SB)/fuzz/run_%: $(SB)/obj/fuzz/fuzz_%.o $(SB)/obj/fuzz/standalone_main.o $(SB)/libgraft.a
	@mkdir -p $(dir $@)
	@echo "LD(san) $@"; $(CC) $(SAN_CFLAGS) $(LDFLAGS) -o $@ $^ $(GR_LIBS) $(LDLIBS)
$(B)/fuzz/.built: $(patsubst %,$(B)/fuzz/run_%,$(FUZZ_TARGETS))
	@touch $@
$(SB)/fuzz/.built: $(patsubst %,$(SB)/fuzz/run_%,$(FUZZ_TARGETS))
	@touch $@
check: $(B)/fuzz/.built $(SB)/fuzz/.built
test-fast: $(B)/fuzz/.built
fuzz-regress: $(B)/fuzz/.built
	@GRAFT_BIN=$(CURDIR)/$(B)/graft bash tests/test_fuzz_regress.sh

# ---- generated code: the ONNX reader (Debian's onnx.proto from libonnx-dev, protoc-c) ----
# generated into $(B)/gen like tb_event; src/format/onnx*.c include onnx.pb-c.h
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
ONNX_SRC   := $(wildcard src/format/onnx*.c) fuzz/fuzz_onnx.c
$(B)/gen/onnx.pb-c.c: $(ONNX_PROTO) | $(B)/config.mk
	@mkdir -p $(B)/gen
	@echo "PROTOC-C $<"; protoc-c --proto_path=$(dir $(ONNX_PROTO)) --c_out=$(B)/gen $(ONNX_PROTO)
$(B)/gen/onnx.pb-c.h: $(B)/gen/onnx.pb-c.c
	@test -f $@ || protoc-c --proto_path=$(dir $(ONNX_PROTO)) --c_out=$(B)/gen $(ONNX_PROTO)
$(call objs,$(B),$(ONNX_SRC)) $(call objs,$(SB),$(ONNX_SRC)) $(call objs,$(FB),$(ONNX_SRC)): $(B)/gen/onnx.pb-c.h
$(call objs,$(B),$(ONNX_SRC)) $(call objs,$(SB),$(ONNX_SRC)) $(call objs,$(FB),$(ONNX_SRC)): GR_CFLAGS += -I$(B)/gen
$(B)/libgraft.a $(B)/libgraft.so.$(VERSION): $(B)/obj/gen/onnx.pb-c.o
$(SB)/libgraft.a: $(SB)/obj/gen/onnx.pb-c.o
$(FB)/libgraft.a: $(FB)/obj/gen/onnx.pb-c.o
# ---- peers (issue 18): graft vs current PyTorch (eager, torch.compile), ONNX Runtime,
# OpenVINO and Keras 3 from the package index, in $(B)/peers-venv (bench/peers.sh) ----
bench-peers: deps-test $(B)/graft
	@B=$(B) bench/peers.sh
.PHONY: bench-peers
# ---- generated code: TensorBoard's event messages (src/report/tb_event.proto, protoc-c) ----
# generated once into $(B)/gen (a pattern rule: one protoc-c run makes both files);
# both builds compile it into their libgraft (not graft's own code: no -Werror)
$(B)/gen/%.pb-c.c $(B)/gen/%.pb-c.h: src/report/%.proto | $(B)/config.mk
	@mkdir -p $(B)/gen
	@echo "PROTOC-C $<"; protoc-c --proto_path=src/report --c_out=$(B)/gen $<
$(B)/obj/gen/%.o: $(B)/gen/%.c | $(B)/config.mk
	@mkdir -p $(dir $@)
	@echo "CC $<"; $(CC) $(GR_CFLAGS) $(CFLAGS) -I$(B)/gen -c $< -o $@
$(SB)/obj/gen/%.o: $(B)/gen/%.c | $(B)/config.mk
	@mkdir -p $(dir $@)
	@echo "CC(san) $<"; $(CC) $(GR_CFLAGS) $(SAN_CFLAGS) -I$(B)/gen -c $< -o $@
$(B)/obj/src/report/tb_events.o $(SB)/obj/src/report/tb_events.o: $(B)/gen/tb_event.pb-c.h
$(B)/obj/src/report/tb_events.o $(SB)/obj/src/report/tb_events.o: GR_CFLAGS += -I$(B)/gen
$(B)/libgraft.a $(B)/libgraft.so.$(VERSION): $(B)/obj/gen/tb_event.pb-c.o
$(SB)/libgraft.a: $(SB)/obj/gen/tb_event.pb-c.o
# the fuzzing build (clang) links the same generated code
$(FB)/obj/gen/%.o: $(B)/gen/%.c | $(B)/config.mk
	@mkdir -p $(dir $@)
	@echo "CC(fuzz) $<"; $(FUZZ_CC) $(GR_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -I$(B)/gen -c $< -o $@
$(FB)/obj/src/report/tb_events.o: $(B)/gen/tb_event.pb-c.h
$(FB)/obj/src/report/tb_events.o: GR_CFLAGS += -I$(B)/gen
$(FB)/libgraft.a: $(FB)/obj/gen/tb_event.pb-c.o
# the ThreadSanitizer build (clang) links the same generated code
$(TB)/obj/gen/%.o: $(B)/gen/%.c | $(B)/config.mk
	@mkdir -p $(dir $@)
	@echo "CC(tsan) $<"; $(TSAN_CC) $(GR_CFLAGS) $(TSAN_CFLAGS) -I$(B)/gen -c $< -o $@
$(TB)/obj/src/report/tb_events.o: $(B)/gen/tb_event.pb-c.h
$(TB)/obj/src/report/tb_events.o: GR_CFLAGS += -I$(B)/gen
$(TB)/libgraft.a: $(TB)/obj/gen/tb_event.pb-c.o
$(call objs,$(TB),$(ONNX_SRC)): $(B)/gen/onnx.pb-c.h
$(call objs,$(TB),$(ONNX_SRC)): GR_CFLAGS += -I$(B)/gen
$(TB)/libgraft.a: $(TB)/obj/gen/onnx.pb-c.o
