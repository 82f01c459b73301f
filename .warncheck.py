import multiprocessing, os, sys, time, warnings
warnings.simplefilter("error")
import fastfutures
from fastfutures.process import TaskTimeout

def slow(x):
    time.sleep(x)
    return os.getpid()

if __name__ == "__main__":
    ex = fastfutures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"), task_timeout=0.2)
    first = set(ex.submit(slow, 0).result() for _ in range(4))
    outcomes = []
    for _ in range(3):
        try:
            ex.submit(slow, 2).result(timeout=10)
        except Exception as e:
            outcomes.append(type(e).__name__)
    print(sys.version.split()[0], "outcomes:", outcomes, "broken:", bool(ex._broken), "pids:", len(ex._processes))
    ex.shutdown()
