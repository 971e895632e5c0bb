"""The ``openpersonalize`` command's way to a running server: the endpoint, signed requests to
the operator's endpoints (api/operator_endpoints.py) and boto3 clients, all with the credentials and region
boto3 would use.

The endpoint is ``--endpoint-url``, else ``OPENPERSONALIZE_ENDPOINT``, else ``AWS_ENDPOINT_URL``,
else ``http://127.0.0.1:<OPENPERSONALIZE_PORT or 8080>``. Without credentials anywhere (a server
without access keys accepts any signature) the command signs with placeholder ones.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import Session

from .config import Settings

PLACEHOLDER = Credentials("openpersonalize", "openpersonalize")
TIMEOUT = 60.0


class CommandError(Exception):
    """A failure the command reports as one line and a non-zero exit."""


def endpoint_url(given: str | None = None) -> str:
    url = given or os.environ.get("OPENPERSONALIZE_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        url = f"http://127.0.0.1:{Settings.from_env().port}"
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise CommandError(f"the endpoint {url!r} is not an http:// or https:// URL")
    return url.rstrip("/")


@dataclass
class ServerClient:
    endpoint: str
    credentials: Credentials
    region: str

    @classmethod
    def from_environment(cls, endpoint: str | None = None) -> ServerClient:
        session = Session()
        credentials = session.get_credentials()
        region = session.get_config_variable("region") or os.environ.get("OPENPERSONALIZE_REGION") or "us-east-1"
        return cls(endpoint_url(endpoint), credentials.get_frozen_credentials() if credentials else PLACEHOLDER,
                   region)

    def boto3(self, service: str):
        import boto3
        from botocore.config import Config

        creds = self.credentials
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                            aws_session_token=creds.token, config=Config(retries={"total_max_attempts": 2}))

    # -- the operator's endpoints ----------------------------------------------------------

    def json(self, path: str, **query) -> dict:
        status, body = self._send("GET", path, query)
        return self._decode(status, body)

    def upload(self, path: str, fh, size: int) -> dict:
        status, body = self._send("PUT", path, {}, stream=fh, size=size)
        return self._decode(status, body)

    def download(self, path: str, out) -> int:
        """Write the object at ``path`` to ``out``; its size."""
        conn, response = self._open("GET", path, {})
        try:
            if response.status != 200:
                self._decode(response.status, response.read())
            size = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                size += len(chunk)
            return size
        finally:
            conn.close()

    def _send(self, method: str, path: str, query: dict, stream=None, size: int = 0) -> tuple[int, bytes]:
        conn, response = self._open(method, path, query, stream, size)
        try:
            return response.status, response.read()
        finally:
            conn.close()

    def _open(self, method: str, path: str, query: dict, stream=None, size: int = 0):
        parsed = urllib.parse.urlsplit(self.endpoint)
        target = urllib.parse.quote(path) + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
        url = f"{self.endpoint}{target}"
        headers = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"} if stream is not None else {}
        request = AWSRequest(method=method, url=url, data=b"", headers=headers)
        SigV4Auth(self.credentials, "personalize", self.region).add_auth(request)
        send_headers = dict(request.headers.items())
        if stream is not None:
            send_headers["Content-Length"] = str(size)
        factory = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
        conn = factory(parsed.hostname, parsed.port, timeout=TIMEOUT)
        try:
            conn.request(method, target, body=stream, headers=send_headers)
            return conn, conn.getresponse()
        except (ConnectionError, OSError) as exc:
            conn.close()
            raise CommandError(f"no server answers at {self.endpoint} ({exc.strerror or exc}): start one with "
                               "`openpersonalize serve`, or name yours with --endpoint-url") from None

    @staticmethod
    def _decode(status: int, body: bytes) -> dict:
        try:
            doc = json.loads(body) if body else {}
        except ValueError:
            doc = {"message": body[:200].decode(errors="replace")}
        if status != 200:
            code = doc.get("__type", f"HTTP {status}")
            raise CommandError(f"{code}: {doc.get('message', '')}".rstrip(": "))
        return doc
