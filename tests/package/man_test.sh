#!/usr/bin/env bash
# The man page covers the command line: every command listed by `mqledger --help` (and the
# proof sub-commands), and every --option printed by `mqledger --help` and
# `mqledger COMMAND --help`, must appear in docs/mqledger.1 as rendered by groff; a command's
# options in its "COMMAND OPTIONS" section or in "GENERAL OPTIONS", each command as an entry of
# "COMMANDS". Fails (exit 1) naming what is missing.
#
#   bash tests/package/man_test.sh BUILD/daemon/mqledger docs/mqledger.1
set -euo pipefail

binary="${1:?usage: man_test.sh MQLEDGER_BINARY MAN_PAGE}"
page="${2:?usage: man_test.sh MQLEDGER_BINARY MAN_PAGE}"
[[ -x "$binary" ]] || { echo "man_test: $binary is not built" >&2; exit 1; }
[[ -f "$page" ]] || { echo "man_test: no $page" >&2; exit 1; }

# Plain text, long lines (an option name is never split), no hyphenation, no overstriking.
rendered="$(groff -man -Tascii -P-cbou -rLL=250n -ww "$page" 2>/dev/null)"
[[ -n "$rendered" ]] || { echo "man_test: groff rendered nothing from $page" >&2; exit 1; }

# The body of the section whose heading (a line starting in column 1) is $1.
section() {
    awk -v want="$1" '/^[^ \t]/ { on = ($0 == want); next } on' <<<"$rendered"
}

missing=0
miss() { echo "man_test: missing from $page: $*" >&2; missing=1; }

# `--name` as a whole word (not a prefix of a longer option) in text $2.
has_option() {
    grep -Eq -- "(^|[^A-Za-z0-9-])$1([^A-Za-z0-9-]|$)" <<<"$2"
}

top="$("$binary" --help)"
mapfile -t commands < <(awk '/^Commands:/ { on = 1; next } on && NF == 0 { on = 0 } on { print $1 }' <<<"$top")
((${#commands[@]} >= 5)) || { echo "man_test: could not read the commands from '$binary --help'" >&2; exit 1; }

commands_text="$(section COMMANDS)"
general="$(section "GENERAL OPTIONS")"
for opt in $(grep -Eo -- '--[a-z][a-z0-9-]*' <<<"$top" | sort -u) --help -h --version; do
    has_option "$opt" "$rendered" || miss "$opt (mqledger --help)"
done

checked=0
for cmd in "${commands[@]}"; do
    # An entry of COMMANDS: the command as the tag of an indented paragraph.
    grep -Eq "^ {1,8}$cmd( |\$)" <<<"$commands_text" || miss "command $cmd (COMMANDS)"
    help="$("$binary" "$cmd" --help)" || { echo "man_test: '$binary $cmd --help' failed" >&2; exit 1; }
    own="$(section "${cmd^^} OPTIONS")"
    # Sub-commands named in the usage lines (mqledger proof check-inclusion ...).
    # shellcheck disable=SC2013 # words are wanted: one sub-command or option each
    for sub in $(sed -n "s/^ *\\(Usage: \\)\\{0,1\\}mqledger $cmd \\([a-z][a-z-]*\\) .*/\\2/p" <<<"$help" | sort -u); do
        grep -Eq -- "(^|[^a-z-])$cmd $sub([^a-z-]|$)" <<<"$rendered" || miss "mqledger $cmd $sub"
    done
    # shellcheck disable=SC2013
    for opt in $(grep -Eo -- '--[a-z][a-z0-9-]*' <<<"$help" | sort -u); do
        checked=$((checked + 1))
        has_option "$opt" "$own" || has_option "$opt" "$general" || miss "$opt (mqledger $cmd --help; section '${cmd^^} OPTIONS')"
    done
done

((checked >= 40)) || { echo "man_test: only $checked options found in the help texts; parsing broke?" >&2; exit 1; }
if ((missing)); then exit 1; fi
echo "man_test: ${#commands[@]} commands and $checked command options all in $page"
