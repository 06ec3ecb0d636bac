"""MPyC reference: 3-party secure sum of 10,000-value vectors (outside reference for
benches/mpc_aggregate.rs).

Run (single process, MPyC's local simulation of 3 parties over a prime field):
    python3 benches/mpyc_sum.py -M3 --no-async
or as 3 processes on 127.0.0.1 (one per party, run all three):
    python3 benches/mpyc_sum.py -M3 -I0 & python3 benches/mpyc_sum.py -M3 -I1 & python3 benches/mpyc_sum.py -M3 -I2
Party i contributes a vector of 10,000 integers; every party learns the element-wise sum.
"""
import time

from mpyc.runtime import mpc

LEN = 10_000
REPS = 5


async def main():
    await mpc.start()
    secint = mpc.SecInt(64)
    me = mpc.pid
    mine = [(me * 7919 + j * 104729) % 1000003 - 500000 for j in range(LEN)]
    times = []
    for _ in range(REPS):
        await mpc.barrier()
        t0 = time.perf_counter()
        shared = mpc.input([secint(v) for v in mine])  # one list per party
        total = mpc.vector_add(mpc.vector_add(shared[0], shared[1]), shared[2]) if len(shared) == 3 \
            else [mpc.sum(col) for col in zip(*shared)]
        result = await mpc.output(total)
        times.append(time.perf_counter() - t0)
    await mpc.shutdown()
    times.sort()
    print(f"MPyC {mpc.parties.__len__()}-party secure sum of {LEN}-value vectors: "
          f"median {times[len(times) // 2] * 1e3:.1f} ms over {REPS} runs (first values {result[:3]})")


if __name__ == "__main__":
    mpc.run(main())
