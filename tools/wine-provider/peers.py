#!/usr/bin/env python3
"""Test peers for scripts/wine-test (stdlib only, loopback only).

Every mode prints one result line and exits 0 on success, 1 on failure:
  echo     --host H --port P --peers N --size BYTES [--half-close]
  reset    --host H --port P               a peer resetting mid-transfer, then a normal echo
  hold     --host H --port P --idle I --busy B --timeout S
           keeps I idle and B busy peers; prints "ready" once all are connected and echoing,
           then waits until every connection has ended (reset or closed) or S seconds pass
  maxconn  --host H --port P --max K       K peers served, the next one refused, then one freed
  noread   --host H --port P               a peer that never reads: its sends stall (bounded
                                           buffering); another peer is still served meanwhile
  peraddr  --host H --port P --max K [--other SRC]
           K peers from H's own address served, the next one from it refused, a peer from
           source address SRC (another loopback address) served meanwhile, then one of the K
           closed and a new peer from H served again
  idle     --host H --port P --max K --timeout T
           K peers served once, then silent (the driver's MaxConnections): peer K+1 refused;
           not cut off before 0.8 T; within T + 2.5 s every silent peer is closed by the
           driver and a new peer is served
  stall    --host H --port P --timeout T
           a peer that sends without ever reading, so the driver's send stays pending: it is
           reset by the driver after at least 0.8 T and within T + 2.5 s; another peer is
           served meanwhile
  recover  --host H --port P --timeout S
           a new peer is served within S seconds (a listener being reopened)
  nagle    --host H --port P --rounds N --size BYTES
           N request/response round trips of BYTES each on one connection; prints the median
           round trip in ms as "median_ms=X"
"""
import argparse
import os
import socket
import struct
import sys
import threading
import time

LOOPBACK = {"127.0.0.1", "::1"}


def connect(host, port, timeout=10.0, source=None):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source is not None:
        s.bind((source, 0))
    s.connect((host, port))
    return s


def echo_one(host, port, size, half_close, errors, idx):
    payload = os.urandom(size)
    try:
        s = connect(host, port)
        received = bytearray()
        failed = []

        def reader():
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    received.extend(chunk)
                    if not half_close and len(received) >= size:
                        break
            except OSError as e:
                failed.append(f"recv: {e!r} after {len(received)} bytes")

        t = threading.Thread(target=reader)
        t.start()
        s.sendall(payload)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        t.join(60)
        if t.is_alive():
            failed.append(f"timeout with {len(received)} of {size} bytes")
        s.close()
        if failed:
            errors.append(f"peer {idx}: {failed[0]}")
        elif bytes(received) != payload:
            first = next((i for i in range(min(len(received), size)) if received[i] != payload[i]),
                         min(len(received), size))
            errors.append(f"peer {idx}: {len(received)} bytes back of {size}, first difference at {first}")
    except OSError as e:
        errors.append(f"peer {idx}: {e!r}")


def run_echo(a):
    errors = []
    threads = [threading.Thread(target=echo_one, args=(a.host, a.port, a.size, a.half_close, errors, i))
               for i in range(a.peers)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    if errors:
        print(f"echo {a.host}: {len(errors)} of {a.peers} peers failed: {errors[0]}")
        return 1
    mib = a.peers * a.size / 1048576
    print(f"echo {a.host}: {a.peers} peers x {a.size} bytes byte-exact in {dt:.1f} s ({mib / dt:.1f} MiB/s)")
    return 0


def run_reset(a):
    s = connect(a.host, a.port)
    chunk = os.urandom(65536)
    for _ in range(8):
        s.sendall(chunk)
    s.recv(4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # RST with data in flight both ways
    time.sleep(0.3)
    errors = []
    echo_one(a.host, a.port, 100000, True, errors, 0)
    if errors:
        print(f"reset: the echo after a reset failed: {errors[0]}")
        return 1
    print("reset: peer reset mid-transfer; the next peer was served byte-exact")
    return 0


def run_hold(a):
    conns, stop = [], threading.Event()
    ended = {}
    lock = threading.Lock()

    def busy(s, i):
        data = os.urandom(8192)
        how = "timeout"
        try:
            s.settimeout(a.timeout)
            while True:
                s.sendall(data)
                got = 0
                while got < len(data):
                    c = s.recv(65536)
                    if not c:
                        how = "closed"
                        raise EOFError
                    got += len(c)
        except EOFError:
            pass
        except ConnectionResetError:
            how = "reset"
        except socket.timeout:
            how = "timeout"
        except OSError as e:
            how = "reset" if e.errno in (104, 32) else f"error {e!r}"
        with lock:
            ended[i] = how

    def idle(s, i):
        how = "timeout"
        try:
            s.settimeout(a.timeout)
            c = s.recv(1)
            how = "closed" if not c else "data"
        except ConnectionResetError:
            how = "reset"
        except socket.timeout:
            how = "timeout"
        except OSError as e:
            how = f"error {e!r}"
        with lock:
            ended[i] = how

    threads = []
    for i in range(a.idle + a.busy):
        s = connect(a.host, a.port)
        if i < a.idle:
            s.sendall(b"x")
            s.recv(1)  # served once, then idle
        conns.append(s)
        threads.append(threading.Thread(target=idle if i < a.idle else busy, args=(s, i)))
    for t in threads:
        t.start()
    time.sleep(0.5)
    print("ready", flush=True)
    t0 = time.time()
    for t in threads:
        t.join(a.timeout + 5)
    dt = time.time() - t0
    kinds = {}
    for how in ended.values():
        kinds[how] = kinds.get(how, 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    bad = len(ended) != len(threads) or any(k not in ("reset", "closed") for k in kinds)
    print(f"hold: {a.idle} idle + {a.busy} busy peers ended in {dt:.1f} s: {summary}")
    return 1 if bad else 0


def served(s, n=1000):
    data = os.urandom(n)
    s.sendall(data)
    got = b""
    while len(got) < n:
        c = s.recv(65536)
        if not c:
            return False
        got += c
    return got == data


def refused(host, port):
    """True if a new connection is not served (closed or reset without echo)."""
    try:
        s = connect(host, port, timeout=5)
        try:
            s.sendall(b"y" * 10)
            c = s.recv(10)
            return not c
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            s.close()
    except (ConnectionRefusedError, ConnectionResetError):
        return True


def served_within(host, port, seconds, size):
    """Tries a new peer every 0.2 s until one is served (echo of `size` bytes) or `seconds`
    pass: the seconds it took, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            s = connect(host, port, timeout=1)
            s.settimeout(2)
            try:
                if served(s, size):
                    return time.monotonic() - t0
            except OSError:
                pass
            finally:
                s.close()
        except OSError:
            pass
        time.sleep(0.2)
    return None


def fill(a, mode, limit):
    """Opens a.max served peers, then checks that one more is refused: the open peers, or
    None after printing what went wrong."""
    conns = [connect(a.host, a.port) for _ in range(a.max)]
    for i, s in enumerate(conns):
        if not served(s):
            print(f"{mode}: peer {i} of {a.max} from {a.host} not served")
            return None
    if not refused(a.host, a.port):
        print(f"{mode}: peer {a.max + 1} from {a.host} was served beyond {limit}={a.max}")
        return None
    return conns


def run_maxconn(a):
    conns = fill(a, "maxconn", "MaxConnections")
    if conns is None:
        return 1
    conns.pop().close()
    time.sleep(0.5)
    s = connect(a.host, a.port)
    ok = served(s)
    s.close()
    for c in conns:
        c.close()
    if not ok:
        print("maxconn: after one peer left, a new peer was not served")
        return 1
    print(f"maxconn: {a.max} peers served, peer {a.max + 1} refused, a later peer served")
    return 0


def run_peraddr(a):
    conns = fill(a, "peraddr", "MaxConnectionsPerAddress")
    if conns is None:
        return 1
    if a.other:
        s = connect(a.host, a.port, source=a.other)
        ok = served(s)
        s.close()
        if not ok:
            print(f"peraddr: a peer from {a.other} was not served while {a.host} held its quota")
            return 1
    conns.pop().close()
    # Its place in the quota frees once the driver has closed that connection: retry briefly.
    deadline = time.monotonic() + 5
    while True:
        try:
            s = connect(a.host, a.port)
            ok = served(s)
            s.close()
        except OSError:
            ok = False
        if ok or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for c in conns:
        c.close()
    if not ok:
        print(f"peraddr: after one of {a.host}'s peers left, a new peer from it was not served")
        return 1
    other = f", a peer from {a.other} served meanwhile" if a.other else ""
    print(f"peraddr: {a.max} peers from {a.host} served, peer {a.max + 1} refused{other}, a later peer served")
    return 0


def run_noread(a):
    s = connect(a.host, a.port)
    s.setblocking(False)
    sent, chunk, t0 = 0, b"z" * 65536, time.time()
    stalled_at = None
    while time.time() - t0 < 4:
        try:
            sent += s.send(chunk)
            stalled_at = None
        except BlockingIOError:
            if stalled_at is None:
                stalled_at = time.time()
            elif time.time() - stalled_at > 1.0:
                break
            time.sleep(0.05)
    other = connect(a.host, a.port)
    ok = served(other, 50000)
    other.close()
    s.close()
    limit = 64 * 1048576
    if not ok:
        print("noread: another peer was not served while one peer never reads")
        return 1
    if stalled_at is None or sent > limit:
        print(f"noread: the non-reading peer's sends never stalled ({sent} bytes accepted)")
        return 1
    print(f"noread: the non-reading peer stalled after {sent} bytes; another peer was served")
    return 0


def run_idle(a):
    conns = fill(a, "idle", "MaxConnections")
    if conns is None:
        return 1
    last = time.monotonic()
    # Not cut off too early: still open at 80 % of the timeout.
    time.sleep(max(0.0, a.timeout * 0.8 - (time.monotonic() - last)))
    for i, s in enumerate(conns):
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                print(f"idle: silent peer {i} closed after {time.monotonic() - last:.1f} s, before 0.8 x IdleTimeout")
                return 1
        except BlockingIOError:
            pass
        except OSError as e:
            print(f"idle: silent peer {i} reset after {time.monotonic() - last:.1f} s, before 0.8 x IdleTimeout: {e!r}")
            return 1
        s.setblocking(True)
    deadline = last + a.timeout + 2.5
    took = served_within(a.host, a.port, deadline - time.monotonic(), 100)
    served_at = None if took is None else time.monotonic() - last
    if served_at is None:
        print(f"idle: no new peer served within IdleTimeout + 2.5 s ({a.timeout + 2.5:.1f} s)")
        return 1
    cut = 0
    for s in conns:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            if s.recv(1) == b"":
                cut += 1
        except OSError:
            cut += 1
        s.close()
    if cut != len(conns):
        print(f"idle: {len(conns) - cut} of {len(conns)} silent peers still connected")
        return 1
    print(f"idle: {len(conns)} silent peers cut off, a new peer served {served_at:.1f} s after their last byte")
    return 0


def run_stall(a):
    s = connect(a.host, a.port)
    s.setblocking(False)
    chunk, t0 = b"s" * 65536, time.monotonic()
    reset_at = None
    while time.monotonic() - t0 < a.timeout + 2.5:
        try:
            s.send(chunk)
        except BlockingIOError:
            time.sleep(0.05)
        except OSError:
            reset_at = time.monotonic() - t0
            break
    other = connect(a.host, a.port)
    ok = served(other, 10000)
    other.close()
    s.close()
    if reset_at is None:
        print(f"stall: the stalled peer was not cut off within IdleTimeout + 2.5 s")
        return 1
    if reset_at < a.timeout * 0.8:
        print(f"stall: the stalled peer was cut off after {reset_at:.1f} s, before 0.8 x IdleTimeout")
        return 1
    if not ok:
        print("stall: another peer was not served")
        return 1
    print(f"stall: the peer that never reads was reset after {reset_at:.1f} s; another peer was served")
    return 0


def run_recover(a):
    took = served_within(a.host, a.port, a.timeout, 1000)
    if took is None:
        print(f"recover: no peer served within {a.timeout} s")
        return 1
    print(f"recover: served {took:.1f} s after the first attempt")
    return 0


def run_nagle(a):
    payload = os.urandom(a.size)
    times = []
    try:
        s = connect(a.host, a.port)
        for _ in range(a.rounds):
            t = time.monotonic()
            s.sendall(payload)
            got = 0
            while got < a.size:
                c = s.recv(1 << 20)
                if not c:
                    print("nagle: the driver closed the connection")
                    return 1
                got += len(c)
            times.append((time.monotonic() - t) * 1000)
        s.close()
    except OSError as e:
        print(f"nagle: {e!r} after {len(times)} round trips")
        return 1
    times.sort()
    print(f"nagle: median_ms={times[len(times) // 2]:.1f} over {a.rounds} round trips of {a.size} bytes")
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["echo", "reset", "hold", "maxconn", "noread", "peraddr", "idle", "stall",
                                    "recover", "nagle"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=40007)
    p.add_argument("--peers", type=int, default=1)
    p.add_argument("--size", type=int, default=1000)
    p.add_argument("--half-close", action="store_true")
    p.add_argument("--idle", type=int, default=0)
    p.add_argument("--busy", type=int, default=0)
    p.add_argument("--timeout", type=float, default=15)
    p.add_argument("--max", type=int, default=4)
    p.add_argument("--other", default=None)
    p.add_argument("--rounds", type=int, default=20)
    a = p.parse_args()
    if a.other is not None and not a.other.startswith("127."):
        print("peers.py: --other must be a 127.0.0.0/8 address")
        return 2
    if a.host not in LOOPBACK:
        print("peers.py: loopback addresses only")
        return 2
    return {"echo": run_echo, "reset": run_reset, "hold": run_hold, "maxconn": run_maxconn,
            "noread": run_noread, "peraddr": run_peraddr, "idle": run_idle, "stall": run_stall,
            "recover": run_recover, "nagle": run_nagle}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
