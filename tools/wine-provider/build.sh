#!/bin/bash
# Builds the test provider (netio.sys), the devcon-like helper (wtdevcon.exe) and the probe
# driver (wtprobe.sys) into OUTDIR (default
# ${CARGO_TARGET_DIR:-./target}/wine). Never writes into the source tree.
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
out=${1:-${CARGO_TARGET_DIR:-$src/../../target}/wine}
mkdir -p "$out/obj"
out=$(cd "$out" && pwd)
cd "$out/obj"   # winegcc's temporary files land in the current directory
winegcc=/usr/lib/wine/winegcc
[ -x "$winegcc" ] || winegcc=$(command -v winegcc)
cflags=(-b x86_64-w64-mingw32 -O2 -g -Wall -Wno-format -Wno-unused-function -Wno-unused-variable -Wno-multichar)
# netio.sys: a console-subsystem DLL (so that Wine calls its DllMain), built as netio.dll and
# installed under the name netio.sys.
"$winegcc" "${cflags[@]}" -shared -o "$out/obj/netio.dll" \
    "$src/verifier.c" "$src/wsk.c" "$src/netio.spec" -lntoskrnl -lws2_32 -ladvapi32 -lntdll
cp "$out/obj/netio.dll" "$out/netio.sys"
if [ -f "$src/devcon.c" ]; then
    "$winegcc" "${cflags[@]}" -mconsole -municode -o "$out/obj/wtdevcon.exe" "$src/devcon.c" -lsetupapi -lnewdev -ladvapi32
    cp "$out/obj/wtdevcon.exe" "$out/wtdevcon.exe"
fi
# wtprobe.sys: the rule-breaking probe driver (native subsystem, imports netio.sys)
x86_64-w64-mingw32-dlltool -d "$src/netio.def" -D netio.sys -l "$out/obj/libnetio-test.a"
# ntoskrnl exports Wine 8.0's import library lacks, which the provider's import thunks supply
printf 'LIBRARY ntoskrnl.exe\nEXPORTS\nIoSetCompletionRoutineEx\n' >"$out/obj/ntoskrnl-extra.def"
x86_64-w64-mingw32-dlltool -d "$out/obj/ntoskrnl-extra.def" -D ntoskrnl.exe -l "$out/obj/libntoskrnl-extra.a"
"$winegcc" "${cflags[@]}" -shared -nostartfiles -Wl,--subsystem,native -Wl,-e,DriverEntry \
    -o "$out/obj/wtprobe.dll" "$src/probe.c" -L"$out/obj" -lnetio-test -lntoskrnl -lntoskrnl-extra
cp "$out/obj/wtprobe.dll" "$out/wtprobe.sys"
echo "built $out/netio.sys $out/wtdevcon.exe $out/wtprobe.sys"
