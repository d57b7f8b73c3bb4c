# Sourced (never run) by the scripts of this repository: the one place for the toolchain, the
# target directory rule and the cross-build environment. Needs bash; sets no shell options.
#
#   source "$root/scripts/lib/env.sh"    # with $root the repository's top directory

# Every step uses Debian's rustc-web toolchain (/usr/bin; scripts/prereqs installs it), never
# rustup's or anything else on PATH: rustup's has no library sources for -Zbuild-std, and one
# toolchain for host and cross builds means one version to check.
use_debian_toolchain() {
    export PATH="/usr/bin:$PATH"
    export CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
    unset RUSTUP_TOOLCHAIN RUSTC_WRAPPER
}

# The target directory of host builds, absolute and created: $CARGO_TARGET_DIR or $root/target.
host_target_dir() {
    local dir=${CARGO_TARGET_DIR:-$root/target}
    mkdir -p "$dir"
    (cd "$dir" && pwd)
}

# The target directory of the cross-build and the package: host_target_dir, inside the
# project. wdk-build finds the workspace by walking up from OUT_DIR to the first Cargo.lock,
# so a target directory outside the project falls back to $root/target.
project_target_dir() {
    local dir
    dir=$(host_target_dir)
    if [[ $dir != "$root"/* ]]; then
        echo "note: CARGO_TARGET_DIR is outside the project; the cross-build uses $root/target" >&2
        dir=$root/target
    fi
    echo "$dir"
}

# The environment of the cross-build (docs/building.md), given its work directory <target>/cross.
# Debian's stable rustc may use -Zbuild-std with RUSTC_BOOTSTRAP=1. Flags meant for host builds
# would override the target's rustflags (+crt-static), so they are dropped. libclang on Debian
# does not find its own builtin headers; the mingw-w64 headers, parsed in MSVC mode, need a GNU
# C version to keep their attributes and constant FIELD_OFFSET. The include guards of clang's
# AMX intrinsics headers are predefined, which keeps those headers out of bindgen's view: the
# driver uses no AMX intrinsic, and clang 19's `__tile1024i_str` (Debian 13) makes bindgen
# write a layout check that overflows (`offset_of!(__tile1024i_str, tile) - 1024`).
enter_cross_env() {
    local work=$1
    use_debian_toolchain
    export RUSTC_BOOTSTRAP=1
    unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_TARGET
    export WDKContentRoot=$work/wdk
    BINDGEN_EXTRA_CLANG_ARGS="-isystem $(clang -print-resource-dir)/include"
    BINDGEN_EXTRA_CLANG_ARGS+=" -D__GNUC__=4 -D__GNUC_MINOR__=9 -D__GNUC_PATCHLEVEL__=0"
    BINDGEN_EXTRA_CLANG_ARGS+=" -D__AMXINTRIN_H -D__AMX_FP16INTRIN_H -D__AMX_COMPLEXINTRIN_H"
    export BINDGEN_EXTRA_CLANG_ARGS
}

# The standard library's own sources, which -Zbuild-std compiles (Debian: rust-web-src).
std_library_dir() {
    echo "$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library"
}
