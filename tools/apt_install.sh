# Sourced by the scripts that install a Debian package the tests need (install_browser.sh,
# install_sandbox.sh, install_tex.sh): `apt_install PACKAGES PURPOSE FALLBACK` installs
# PACKAGES (one name, or several separated by spaces, in one apt-get run) with apt-get as
# root, or with sudo when it needs no password; otherwise it prints how to install them and
# FALLBACK (what happens without them). Without apt-get it prints FALLBACK only. Another
# apt-get running at the same time (CI installs TeX in the background) is waited for.
# Returns 0 when it installed the packages, 1 when it could not try.

apt_install() {
    local purpose="$2" fallback="$3" package
    local -a packages
    read -ra packages <<< "$1"
    package="${packages[*]}"
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
    local wait=(-o DPkg::Lock::Timeout=900)  # seconds to wait for another apt-get
    # the package lists may be missing on a fresh machine: update once if the install fails
    "${sudo[@]}" apt-get "${wait[@]}" install -y -qq --no-install-recommends "${packages[@]}" \
        > /dev/null 2>&1 || {
        "${sudo[@]}" apt-get "${wait[@]}" update -qq
        "${sudo[@]}" apt-get "${wait[@]}" install -y -qq --no-install-recommends "${packages[@]}" \
            > /dev/null
    }
}
