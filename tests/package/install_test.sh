#!/usr/bin/env bash
# The Debian package, end to end: build it with cpack from a configured and built tree, run
# lintian on it (any E: fails), install it into a scratch root with dpkg (maintainer scripts run
# with DPKG_ROOT), upgrade it twice (the same package, then a rebuilt one whose conffile
# changed) keeping a local change to the conffile, and check what landed where: files, the
# dpkg database's conffiles, the system user, `systemd-analyze verify` of the installed unit
# against the installed binary, `mqledger --version` and a default URL free of the build tree.
#
#   bash tests/package/install_test.sh BUILD_DIR [SOURCE_DIR]
#
# Needs dpkg-dev (dpkg-shlibdeps), lintian, systemd (systemd-analyze, systemd-sysusers). Runs
# as root in CI; as another user dpkg's --force-not-root is used. Leaves nothing behind
# (MQLEDGER_KEEP_SCRATCH=1 keeps the scratch directory for a look).
set -euo pipefail

build="$(cd "${1:?usage: install_test.sh BUILD_DIR [SOURCE_DIR]}" && pwd -P)"
src="$(cd "${2:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd -P)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/mqledger-package.XXXXXX")"
cleanup() {
    if [[ "${MQLEDGER_KEEP_SCRATCH:-0}" == 1 ]]; then echo "install_test: kept $scratch" >&2; else rm -rf "$scratch"; fi
}
trap cleanup EXIT

failures=0
fail() { echo "install_test: FAIL: $*" >&2; failures=$((failures + 1)); }
die() { echo "install_test: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

version="$(sed -n 's/^project(mqledger VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")"
[[ -n "$version" ]] || die "no project version in $src/CMakeLists.txt"
[[ -x "$build/daemon/mqledger" ]] || die "$build/daemon/mqledger is not built (cmake --build $build --target mqledger)"
[[ -f "$build/CPackConfig.cmake" ]] || die "no $build/CPackConfig.cmake (configure $build first)"
for tool in cpack dpkg dpkg-deb dpkg-query dpkg-shlibdeps lintian systemd-analyze; do
    command -v "$tool" >/dev/null || die "$tool is not installed (deploy/setup.sh installs dpkg-dev, lintian, systemd)"
done

# ---------------------------------------------------------------- build
step "cpack (DEB) from $build"
cpack --config "$build/CPackConfig.cmake" -B "$scratch/out" >"$scratch/cpack.log" 2>&1 \
    || { cat "$scratch/cpack.log" >&2; die "cpack failed"; }
mapfile -t debs < <(find "$scratch/out" -maxdepth 1 -name 'mqledger_*.deb')
((${#debs[@]} == 1)) || { cat "$scratch/cpack.log" >&2; die "expected one mqledger_*.deb in $scratch/out, got ${#debs[@]}"; }
deb="${debs[0]}"
arch="$(dpkg --print-architecture)"
field() { dpkg-deb --field "$deb" "$1"; }
debversion="$(field Version)"   # VERSION-REVISION
[[ "$debversion" == "${version}-"[0-9]* ]] || fail "Version: $debversion is not ${version}-REVISION"
[[ "$(basename "$deb")" == "mqledger_${debversion}_${arch}.deb" ]] || fail "package file name $(basename "$deb")"
echo "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"

[[ "$(field Package)" == mqledger ]] || fail "Package: $(field Package)"
# Dependencies come from dpkg-shlibdeps: libc and the libraries the binary links.
depends="$(field Depends)"
echo "Depends: $depends"
for lib in libc6 libpq libssl libsystemd0 libstdc++6; do
    grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib (shlibdeps): $depends"
done
grep -q postgresql <<<"$(field Recommends)" || fail "Recommends lacks postgresql"

contents="$(dpkg-deb --contents "$deb")"
# Everything root:root; nothing outside /etc/mqledger, /usr.
if awk '$2 != "root/root" { bad = 1 } END { exit !bad }' <<<"$contents"; then fail "files not owned by root/root"; fi
if awk '{ p = $6; sub(/^\./, "", p) } p !~ "^/(etc/mqledger|usr)(/|$)" && p != "/" && p != "/etc/" { print; bad = 1 } END { exit !bad }' <<<"$contents"; then
    fail "files outside /etc/mqledger and /usr (above)"
fi

# ---------------------------------------------------------------- lintian
step "lintian"
set +e
lintian --tag-display-limit 0 "$deb" >"$scratch/lintian.log" 2>&1
set -e
cat "$scratch/lintian.log"
grep -q '^E: ' "$scratch/lintian.log" && fail "lintian reports errors (E: above)"
# The warnings README "Install the Debian package" accepts, and nothing else.
allowed_warnings='^W: mqledger: (initial-upload-closes-no-bugs)( |$)'
if grep '^W: ' "$scratch/lintian.log" | grep -Ev "$allowed_warnings" >&2; then fail "lintian warnings not accepted (above)"; fi

# ---------------------------------------------------------------- install
root="$scratch/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/log" "$root/etc"
: >"$root/var/lib/dpkg/status"
: >"$root/var/lib/dpkg/available"
# Maintainer scripts run on the host (no chroot), with DPKG_ROOT=$root.
dpkg_root() {
    local force=(--force-depends --force-script-chrootless)
    [[ "$(id -u)" == 0 ]] || force+=(--force-not-root --force-bad-path)
    # Its output (the unmet dependencies, expected here) only when it fails.
    if ! dpkg --root="$root" --log="$scratch/dpkg.log" "${force[@]}" "$@" </dev/null >"$scratch/dpkg.out" 2>&1; then
        cat "$scratch/dpkg.out" >&2
        return 1
    fi
    grep -E '^(Creating|Setting up|Unpacking|Removing|Purging)' "$scratch/dpkg.out" || true
}

step "dpkg --root: install"
dpkg_root --install "$deb" || die "dpkg --install into $root failed"
status="$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${db:Status-Status} ${Version}' mqledger)"
[[ "$status" == "installed $debversion" ]] || fail "dpkg status in the root: $status"

# ---------------------------------------------------------------- files
step "installed files"
check_file() { # path mode [owner:group as names or numbers]
    local f="$root$1"
    if [[ ! -f "$f" ]]; then fail "$1 not installed"; return; fi
    local mode
    mode="$(stat -c %a "$f")"
    [[ "$mode" == "$2" ]] || fail "$1 has mode $mode, not $2"
}
check_file /usr/bin/mqledger 755
check_file /usr/lib/systemd/system/mqledger.service 644
check_file /usr/lib/sysusers.d/mqledger.conf 644
check_file /usr/lib/tmpfiles.d/mqledger.conf 644
check_file /usr/share/mqledger/grafana/dashboards/mqledger.json 644
check_file /usr/share/mqledger/grafana/provisioning/dashboards/mqledger.yml 644
check_file /usr/share/mqledger/grafana/provisioning/datasources/mqledger.yml 644
check_file /usr/share/mqledger/prometheus.yml 644
check_file /usr/share/man/man1/mqledger.1.gz 644
check_file /usr/share/doc/mqledger/README.md 644
check_file /usr/share/doc/mqledger/copyright 644
check_file /usr/share/doc/mqledger/changelog.Debian.gz 644
# The conffiles: root:mqledger 0640 after the postinst; the directory 0750.
check_file /etc/mqledger/mqledger.conf 640
check_file /etc/mqledger/tokens 640
[[ "$(stat -c %a "$root/etc/mqledger")" == 750 ]] || fail "/etc/mqledger has mode $(stat -c %a "$root/etc/mqledger"), not 750"

python3 -m json.tool "$root/usr/share/mqledger/grafana/dashboards/mqledger.json" >/dev/null \
    || fail "the installed dashboard is not JSON"
cmp -s "$root/usr/share/mqledger/grafana/dashboards/mqledger.json" "$src/grafana/dashboards/mqledger.json" \
    || fail "installed dashboard differs from grafana/dashboards/mqledger.json"
cmp -s "$root/usr/share/mqledger/prometheus.yml" "$src/deploy/prometheus.yml" || fail "prometheus.yml differs"
cmp -s "$root/etc/mqledger/tokens" "$src/deploy/tokens.example" || fail "/etc/mqledger/tokens differs from deploy/tokens.example"
grep -q '^tokens = /etc/mqledger/tokens$' "$root/etc/mqledger/mqledger.conf" || fail "mqledger.conf lacks tokens = /etc/mqledger/tokens"
grep -q '^database-url' "$root/etc/mqledger/mqledger.conf" && fail "the packaged mqledger.conf sets database-url (the default should apply)"
# The man page is docs/mqledger.1 (not a stale copy) and renders without warnings.
zcat "$root/usr/share/man/man1/mqledger.1.gz" | cmp -s - "$src/docs/mqledger.1" \
    || fail "the installed man page differs from docs/mqledger.1 (reconfigure $build)"
man_warnings="$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$root/usr/share/man/man1/mqledger.1.gz" 2>&1 >/dev/null)"
[[ -z "$man_warnings" ]] || fail "man page warnings: $man_warnings"
# Stripped (lintian checks it too).
readelf -S "$root/usr/bin/mqledger" | grep -q '\.debug_info' && fail "/usr/bin/mqledger is not stripped"

# The dpkg database of the root lists the conffiles.
conffiles="$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Conffiles}\n' mqledger)"
for f in /etc/mqledger/mqledger.conf /etc/mqledger/tokens; do
    grep -q "^ $f [0-9a-f]\{32\}\$" <<<"$conffiles" || fail "$f is not a conffile in the dpkg database: $conffiles"
done
# Every file of the package is recorded.
for f in /usr/bin/mqledger /usr/lib/systemd/system/mqledger.service /usr/share/man/man1/mqledger.1.gz; do
    grep -qx "$f" "$root/var/lib/dpkg/info/mqledger.list" || fail "$f missing from mqledger.list"
done

# ---------------------------------------------------------------- user and group
step "system user"
grep -Eq '^u mqledger - ' "$root/usr/lib/sysusers.d/mqledger.conf" || fail "sysusers.d entry lacks 'u mqledger -'"
grep -Eq '^d /etc/mqledger 0750 root mqledger' "$root/usr/lib/tmpfiles.d/mqledger.conf" || fail "tmpfiles.d entry"
# The postinst ran systemd-sysusers --root: the user is in the root's passwd, not the host's
# concern. Without systemd-sysusers on this host, there is nothing to check.
if command -v systemd-sysusers >/dev/null; then
    grep -Eq '^mqledger:x:[0-9]+:[0-9]+:[^:]*:/nonexistent:/usr/sbin/nologin$' "$root/etc/passwd" \
        || fail "no mqledger system user in $root/etc/passwd: $(cat "$root/etc/passwd" 2>/dev/null)"
    gid="$(awk -F: '$1 == "mqledger" { print $3 }' "$root/etc/group")"
    [[ -n "$gid" ]] || fail "no mqledger group in $root/etc/group"
    for f in /etc/mqledger /etc/mqledger/mqledger.conf /etc/mqledger/tokens; do
        [[ "$(stat -c '%u:%g' "$root$f")" == "0:$gid" ]] || fail "$f is $(stat -c '%u:%g' "$root$f"), not 0:$gid (root:mqledger)"
    done
fi

# ---------------------------------------------------------------- the unit
step "systemd-analyze verify (installed unit, installed binary)"
unit="$root/usr/lib/systemd/system/mqledger.service"
grep -qx 'ExecStart=/usr/bin/mqledger serve --config /etc/mqledger/mqledger.conf' "$unit" \
    || fail "the installed unit's ExecStart is not /usr/bin/mqledger serve --config /etc/mqledger/mqledger.conf"
grep -q '/usr/local' "$unit" && fail "the installed unit mentions /usr/local"
grep -q "$src" "$unit" && fail "the installed unit mentions the checkout $src"
# verify --root checks ExecStart= inside the root but needs the units it refers to
# (multi-user.target, sysinit.target, ...) and /bin/kill (ExecReload): a copy of the installed
# root (hard links: the installed unit and binary themselves) plus the host's units and kill.
vroot="$scratch/vroot"
cp -al "$root" "$vroot"
mkdir -p "$vroot/usr/lib/systemd/system" "$vroot/usr/bin"
cp -rn /usr/lib/systemd/system/. "$vroot/usr/lib/systemd/system/"
ln -s usr/bin "$vroot/bin"
cp "$(type -P kill)" "$vroot/usr/bin/kill"
# Documentation=man:mqledger(1) is checked with man(1), pointed at the root's pages.
verify_out="$(MANPATH="$vroot/usr/share/man" systemd-analyze verify --root="$vroot" mqledger.service 2>&1)" && verify_rc=0 || verify_rc=$?
[[ -z "$verify_out" ]] || echo "$verify_out"
((verify_rc == 0)) || fail "systemd-analyze verify of the installed unit failed (exit $verify_rc)"
grep -q 'mqledger.service' <<<"$verify_out" && fail "systemd-analyze verify warns about the installed unit"
# Not vacuous: without the installed binary, verify fails.
mv "$vroot/usr/bin/mqledger" "$vroot/usr/bin/mqledger.away"
if MANPATH="$vroot/usr/share/man" systemd-analyze verify --root="$vroot" mqledger.service >/dev/null 2>&1; then
    fail "systemd-analyze verify passes without /usr/bin/mqledger in the root: it checks nothing"
fi
rm -rf "$vroot"

# ---------------------------------------------------------------- the binary
step "the installed binary"
out="$("$root/usr/bin/mqledger" --version)" || fail "mqledger --version failed"
[[ "$out" == "mqledger $version" ]] || fail "mqledger --version printed '$out', not 'mqledger $version'"
help="$("$root/usr/bin/mqledger" verify --help)" || fail "mqledger verify --help failed"
grep -q -- '--database-url URL (=dbname=mqledger)' <<<"$help" || fail "verify --help does not show the default dbname=mqledger"
for leak in "$src" "$build" 54329 /var/run/; do
    grep -qF -- "$leak" <<<"$help" && fail "mqledger verify --help mentions '$leak'"
done
grep -qF -- "$src" "$root/usr/bin/mqledger" && fail "the installed binary holds the checkout path $src"

# ---------------------------------------------------------------- upgrades keep the local conffile
step "upgrade: the same package again, with a local change to mqledger.conf"
echo "listen = 127.0.0.1:9999   # local change" >>"$root/etc/mqledger/mqledger.conf"
dpkg_root --install "$deb" || fail "reinstalling the same package failed"
grep -q '^listen = 127.0.0.1:9999   # local change$' "$root/etc/mqledger/mqledger.conf" \
    || fail "reinstalling lost the local change to /etc/mqledger/mqledger.conf"

newversion="${debversion}+rebuilt1"
step "upgrade: a rebuilt package (${newversion}) whose mqledger.conf changed"
rebuilt="$scratch/rebuilt"
dpkg-deb --raw-extract "$deb" "$rebuilt"
echo "# a line added by the new release" >>"$rebuilt/etc/mqledger/mqledger.conf"
echo "# a line added by the new release" >>"$rebuilt/usr/share/doc/mqledger/README.md"
sed -i "s/^Version: .*/Version: ${newversion}/" "$rebuilt/DEBIAN/control"
(cd "$rebuilt" && find etc usr -type f -exec md5sum {} + | sort -k2 >DEBIAN/md5sums)
dpkg-deb --root-owner-group --build "$rebuilt" "$scratch/mqledger_${newversion}.deb" >/dev/null
# Both sides changed: dpkg keeps the admin's file (confold, what apt does non-interactively
# with --force-confdef/--force-confold) and puts the new one next to it.
dpkg_root --force-confdef --force-confold --install "$scratch/mqledger_${newversion}.deb" || fail "upgrade to ${newversion} failed"
[[ "$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Version}' mqledger)" == "${newversion}" ]] || fail "not upgraded to ${newversion}"
grep -q '^listen = 127.0.0.1:9999   # local change$' "$root/etc/mqledger/mqledger.conf" \
    || fail "the upgrade lost the local change to /etc/mqledger/mqledger.conf"
grep -q 'a line added by the new release' "$root/usr/share/doc/mqledger/README.md" || fail "the upgrade did not install the new files"
[[ -f "$root/etc/mqledger/mqledger.conf.dpkg-dist" ]] || fail "no mqledger.conf.dpkg-dist with the new release's version"
cmp -s "$root/etc/mqledger/tokens" "$src/deploy/tokens.example" || fail "the upgrade changed the unmodified tokens conffile"
[[ "$(stat -c %a "$root/etc/mqledger/mqledger.conf")" == 640 ]] || fail "mqledger.conf mode after the upgrade: $(stat -c %a "$root/etc/mqledger/mqledger.conf")"

# ---------------------------------------------------------------- purge
step "purge"
dpkg_root --purge mqledger || fail "dpkg --purge failed"
[[ ! -e "$root/usr/bin/mqledger" ]] || fail "purge left /usr/bin/mqledger"
[[ ! -e "$root/etc/mqledger/mqledger.conf" ]] || fail "purge left the conffile"

if ((failures)); then
    echo "install_test: $failures check(s) failed" >&2
    exit 1
fi
echo "install_test: all checks passed ($(basename "$deb"))"
