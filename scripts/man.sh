#!/usr/bin/env bash
# man.sh GRAFT COMMAND OUT — a man page from the text `graft [COMMAND] --help`
# prints (help2man), so the page and --help cannot drift.  COMMAND "" is graft(1).
set -euo pipefail
graft=$1 cmd=$2 out=$3
command -v help2man >/dev/null || { echo "man.sh: help2man is missing (apt-get install help2man)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
if [ -z "$cmd" ]; then
    name="transfer learning from pretrained CNNs, in C"
    prog="$graft"
else
    # the one-line description from graft's own command list
    name=$("$graft" --help | awk -v c="$cmd" '$1 == c {$1 = ""; sub(/^ +/, ""); print; exit}')
    prog="$graft $cmd"
fi
help2man --no-info --no-discard-stderr --section=1 --source="graft $("$graft" --version | awk '{print $2}')" \
    --manual="graft manual" --name="$name" --version-string="$("$graft" --version | awk '{print $2}')" \
    "$prog" > "$out.tmp"
# help2man names the page after the program path; name it graft / graft-COMMAND
sed -i -e "s|$graft|graft|g" "$out.tmp"
[ -z "$cmd" ] || sed -i -e "s/^\.TH GRAFT /.TH GRAFT-$(echo "$cmd" | tr a-z A-Z) /" "$out.tmp"
mv "$out.tmp" "$out"
