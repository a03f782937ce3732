# Sourced by the scripts that install a Debian package the tests need (install_browser.sh,
# install_sandbox.sh): `apt_install PACKAGE PURPOSE FALLBACK` installs PACKAGE with apt-get
# as root, or with sudo when it needs no password; otherwise it prints how to install it
# and FALLBACK (what happens without it). Without apt-get it prints FALLBACK only.
# Returns 0 when it installed the package, 1 when it could not try.

apt_install() {
    local package="$1" purpose="$2" fallback="$3"
    if ! command -v apt-get > /dev/null; then
        echo "note: $package is missing and there is no apt-get: $fallback" >&2
        return 1
    fi
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
            sudo=(sudo -n)
        else
            echo "note: $package is missing; install it with" >&2
            echo "      sudo apt-get install --no-install-recommends $package" >&2
            echo "      ($fallback)" >&2
            return 1
        fi
    fi
    echo "==> installing Debian's $package $purpose (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # the package lists may be missing on a fresh machine: update once if the install fails
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$package" > /dev/null 2>&1 || {
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$package" > /dev/null
    }
}
