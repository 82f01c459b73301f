"""Fetch many URLs on a thread pool: the stdlib documentation's crawler,
with callbacks, wait() and result(timeout).

Runs against a small HTTP server on 127.0.0.1 that it starts itself (some
pages slow, one missing), so it needs no network:

    python examples/crawler.py [--pages N]
"""
import argparse
import http.server
import threading
import time
import urllib.error
import urllib.request

import fastfutures as futures          # was: import concurrent.futures as futures


class Pages(http.server.BaseHTTPRequestHandler):
    """/page/N answers N * 100 bytes (every 5th page after 50 ms); anything
    else is a 404."""

    def do_GET(self):
        kind, _, number = self.path.strip("/").partition("/")
        if kind != "page" or not number.isdigit():
            self.send_error(404)
            return
        if int(number) % 5 == 0:
            time.sleep(0.05)
        body = b"x" * (int(number) * 100)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):      # quiet: the example prints its own lines
        pass


def start_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def load_url(url, timeout):
    """Retrieve a single page and return its contents."""
    with urllib.request.urlopen(url, timeout=timeout) as conn:
        return conn.read()


def crawl(urls, max_workers=8):
    """Fetch every URL; returns {url: size in bytes, or the exception}."""
    sizes = {}
    downloaded = []                    # filled by a done-callback, in the worker thread

    def count_bytes(future):
        if not future.cancelled() and future.exception() is None:
            downloaded.append(len(future.result()))

    with futures.ThreadPoolExecutor(max_workers=max_workers) as executor:
        # Start the load operations and mark each future with its URL.
        future_to_url = {executor.submit(load_url, url, 60): url for url in urls}
        for future in future_to_url:
            future.add_done_callback(count_bytes)
        # Results as they come, whatever order they were submitted in.
        for future in futures.as_completed(future_to_url):
            url = future_to_url[future]
            try:
                data = future.result()
            except Exception as exc:
                sizes[url] = exc
                print("%r generated an exception: %s" % (url, exc))
            else:
                sizes[url] = len(data)
                print("%r page is %d bytes" % (url, len(data)))
    print("%d pages, %d bytes in all" % (len(downloaded), sum(downloaded)))
    return sizes


def first_answer(urls):
    """The first page that arrives (wait(FIRST_COMPLETED)); the others are cancelled."""
    with futures.ThreadPoolExecutor(max_workers=len(urls)) as executor:
        fs = [executor.submit(load_url, url, 60) for url in urls]
        done, not_done = futures.wait(fs, timeout=30,
                                      return_when=futures.FIRST_COMPLETED)
        for future in not_done:
            future.cancel()             # those still queued never run
        return done.pop().result(timeout=0)


def with_deadline(url, seconds):
    """A page, or None when it takes longer than ``seconds``."""
    with futures.ThreadPoolExecutor(max_workers=1) as executor:
        future = executor.submit(load_url, url, 60)
        try:
            return future.result(timeout=seconds)
        except futures.TimeoutError:    # the builtin TimeoutError since 3.11
            return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20)
    args = parser.parse_args(argv)
    server = start_server()
    base = "http://127.0.0.1:%d" % server.server_address[1]
    try:
        urls = ["%s/page/%d" % (base, n) for n in range(1, args.pages + 1)]
        sizes = crawl(urls + [base + "/missing"])
        assert isinstance(sizes[base + "/missing"], urllib.error.HTTPError)
        print("first answer: %d bytes" % len(first_answer(urls[:4])))
        slow = "%s/page/5" % base        # answers after 50 ms
        page = with_deadline(slow, 0.001)
        print("page 5 within 1 ms:",
              "timed out" if page is None else "%d bytes" % len(page))
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
