"""moto as DynamoDB, its state changed by one request at a time.

moto checks a conditional write's condition and makes the write without a
lock, so two concurrent takes of one lease could both succeed where
DynamoDB lets exactly one through. Requests are read in their own threads
and only then served one at a time: a client stalled mid-request (a worker
paused by SIGSTOP) holds up no one, as it would not in DynamoDB.

Usage: python3 moto_dynamodb.py PORT
"""

import io
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

moto = DomainDispatcherApplication(create_backend_app)
one_at_a_time = threading.Lock()


def app(environ, start_response):
    request = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):
        body = request.read()
    else:
        body = request.read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.input"] = io.BytesIO(body)
    with one_at_a_time:
        response = moto(environ, start_response)
        try:
            return [b"".join(response)]
        finally:
            if hasattr(response, "close"):
                response.close()


run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True, request_handler=MotoRequestHandler)
