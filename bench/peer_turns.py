"""peer_turns.py — the timing loop shared by the PyTorch peers (peer_forward.py,
peer_finetune.py), the same rounds as graft's side (bench_common.h)."""
import os
import time

TURN_ROUNDS = 6


def timed(run, b, secs, turn=None):
    """Times run() (one batch of b images): img/s of the best round of >= 0.25 s
    over secs seconds, mean img/s over all rounds, and the steps taken.  With
    turn = (fd_in, fd_out): TURN_ROUNDS rounds, each taken in turn with graft
    (a byte read before a round, written after it)."""
    run()
    run()
    best, total, rnd, steps = 0.0, 0.0, 0, 0
    round_min = max(0.25, secs / TURN_ROUNDS) if turn else 0.25
    while (rnd < TURN_ROUNDS) if turn else (total < secs or best == 0):
        if turn:
            os.read(turn[0], 1)
        n, t0 = 0, time.perf_counter()
        while True:
            run()
            n += 1
            t = time.perf_counter() - t0
            if t >= round_min:
                break
        total += t
        steps += n
        rnd += 1
        best = max(best, n * b / t)
        if turn:
            os.write(turn[1], b"t")
    return best, steps * b / total, steps
