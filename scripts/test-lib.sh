# Shared by the browser tests (scripts/test-report.sh, scripts/test-web.sh); sourced, not run.
# The sourcing script sets `root` (the repository) and defines `fatal MESSAGE`.

# A path made absolute against the repository.
absolute() { case $1 in /*) echo "$1" ;; *) echo "$root/$1" ;; esac; }

# Debian's chromium, installed with apt-get when missing (root only); NAME names the test in
# messages and in the apt log's file name.
ensure_chromium() {
    local name=$1
    command -v chromium >/dev/null && return
    echo "$name: installing chromium (apt-get)"
    [ "$(id -u)" -eq 0 ] || fatal "chromium is missing and installing it needs root: apt-get install chromium"
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; } \
        >"/tmp/$name-apt.log" 2>&1 || fatal "apt-get install chromium failed (see /tmp/$name-apt.log)"
}
