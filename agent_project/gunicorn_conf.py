"""gunicorn settings for the container (``gunicorn -c agent_project/gunicorn_conf.py``).

Everything tunable comes from the environment, so scaling a web container up or
down is a change of ``WEB_CONCURRENCY`` / ``WEB_THREADS``, not of the image.
``make run`` (agent_project/devrun.py) reads this file too.

gunicorn answers a request it cannot parse (a request line over ``limit_request_line``:
414; a header over ``limit_request_field_size`` or more than ``limit_request_fields``
headers: 431; a malformed line: 400) itself, before Django sees it, as an HTML page: its
one seam for that page is ``gunicorn.util.write_error``, which this file replaces with
the API's JSON error shape. And a 413 for a declared body over the limit closes the
connection (``Connection: close``) instead of keeping it alive over a body nobody reads.
"""

import json
import os

from gunicorn import util as _gunicorn_util

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("WEB_THREADS", "4"))
timeout = int(os.environ.get("WEB_TIMEOUT", "120"))  # a /chat answer waits on the model
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app logs one JSON line per request itself (agent_project/requestlog.py)
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# One embedding call's threads in each worker: the cores shared by the workers (a query embedded on
# every core by each of several workers at once made them contend). EMBEDDING_THREADS overrides.
os.environ.setdefault("EMBEDDING_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, workers))))

limit_request_line = 8190  # gunicorn's largest: a long search or filter URL fits; past it 414 (JSON, below)

_GUNICORN_ERRORS = {  # status: (code, message) -- never gunicorn's text, which quotes the request
    400: ("bad_request", "The request could not be understood."),
    403: ("forbidden", "The request is not allowed."),
    414: ("uri_too_long", f"The request line (path and query string) may be at most {limit_request_line} bytes."),
    417: ("expectation_failed", "The Expect header cannot be met."),
    431: ("headers_too_large", "The request's headers are too large or too many."),
    501: ("not_implemented", "The request uses a transfer coding this server does not implement."),
}


def json_error(sock, status_int, reason, mesg):
    """``gunicorn.util.write_error`` answering the API's error shape instead of an HTML page."""
    code, message = _GUNICORN_ERRORS.get(status_int, ("internal_error", "An unexpected error occurred."))
    body = json.dumps({"error": {"code": code, "message": message, "details": None}})
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    _gunicorn_util.write_nonblock(sock, (head + body).encode("latin-1"))


_gunicorn_util.write_error = json_error


def pre_request(worker, req):
    # A body declared over the limit is answered 413 from its Content-Length (agent_project/limits.py)
    # without being read: keeping the connection alive would mean reading (or misreading) it all.
    length = next((value for name, value in req.headers if name == "CONTENT-LENGTH"), "")
    content_type = next((value for name, value in req.headers if name == "CONTENT-TYPE"), "")
    if length.isdigit():
        from agent_project.limits import body_too_large

        if body_too_large(content_type, int(length)):
            req.must_close = True  # gunicorn then answers "Connection: close" and closes


def on_starting(server):
    # Prometheus multiprocess mode: every worker writes its numbers to files in this
    # folder, and /metrics sums them. Stale files of a previous run would be summed too.
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):
            if name.endswith(".db"):
                os.remove(os.path.join(folder, name))


def post_worker_init(worker):
    # Load the embedding model and the stemmer's dictionary before the first request, not
    # during it (MiniLM with torch: ~7 s on 2 cores, for every worker). WARM_UP=0 skips it.
    if os.environ.get("WARM_UP", "1").lower() in ("0", "false", "no", "off"):
        return
    import time

    started = time.monotonic()
    try:
        from agent_project.lib.embeddings import warm_up
        from knowledge import analysis

        embedder = warm_up()
        analysis.stem("pengiriman")
    except Exception as exc:  # a misconfigured provider is reported by /health and the first search
        worker.log.warning("worker %s: warm-up failed: %s", worker.pid, exc)
        return
    worker.log.info("worker %s: warmed up %s in %.1f s", worker.pid, embedder.name, time.monotonic() - started)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
