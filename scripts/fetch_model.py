"""Download a Hugging Face model directory for the benchmarks.

`make fetch-model` runs

    llama-venv/bin/python scripts/fetch_model.py \\
        --repo openlm-research/open_llama_3b --out models/open_llama_3b

which fetches config.json, the tokenizer files and the weights with
huggingface_hub's snapshot_download. Where safetensors weights exist, the
PyTorch .bin copies of the same weights are skipped. Point MODEL_DIR at
the result to benchmark real weights instead of synthetic ones.

On a machine without network access the script fails within about
--timeout seconds: it first opens one TCP connection to the hub (or to the
HTTPS proxy, when one is configured) and stops with a one-line message
when that fails, without retrying. HF_ENDPOINT overrides the hub's
address, as it does for huggingface_hub.
"""

import argparse
import math
import os
import socket
import sys
import threading
import urllib.parse
import urllib.request

DEFAULT_ENDPOINT = "https://huggingface.co"

# Files a LLaMA directory needs besides the weights.
CONFIG_PATTERNS = [
    "config.json",
    "generation_config.json",
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]
SAFETENSORS_PATTERNS = ["*.safetensors", "model.safetensors.index.json"]
PYTORCH_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]

OFFLINE_HINT = (
    "this machine looks offline, so no weights were downloaded; the benchmarks use synthetic "
    "weights by default (leave MODEL_DIR unset), or copy a Hugging Face model directory here "
    "and set MODEL_DIR to it"
)


class FetchError(Exception):
    """A failure to report as one line, without a traceback."""


def probe_address(endpoint):
    """Return the (host, port) the first connection to endpoint goes to.

    That is the proxy's address when the environment sets one for the
    endpoint's scheme and NO_PROXY does not exempt the host, because
    huggingface_hub's requests session would go through it too.
    """
    url = urllib.parse.urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise FetchError(f"HF_ENDPOINT={endpoint!r} is not an http(s) URL; unset it to use {DEFAULT_ENDPOINT}")
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy and not urllib.request.proxy_bypass(url.hostname):
        purl = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if purl.hostname:
            return purl.hostname, purl.port or (443 if purl.scheme == "https" else 80)
    return url.hostname, url.port or (443 if url.scheme == "https" else 80)


def probe(endpoint, timeout):
    """Open and close one TCP connection to the hub, or raise FetchError.

    The connection runs in a daemon thread so that a name lookup that
    hangs, which the socket timeout does not cover, cannot outlast timeout.
    """
    host, port = probe_address(endpoint)
    outcome = {}

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome["ok"] = True
        except OSError as err:
            outcome["error"] = err

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    if outcome.get("ok"):
        return
    reason = outcome.get("error") or f"no answer within {timeout:g} s"
    raise FetchError(f"cannot connect to {host}:{port} for {endpoint} ({reason}): {OFFLINE_HINT}")


def fetch(endpoint, repo, out, revision, timeout):
    """Download repo's config, tokenizer and weights from endpoint into out."""
    # huggingface_hub reads its timeouts when it is imported. The metadata
    # requests get the short timeout; file downloads keep theirs, because
    # a multi-gigabyte file may stall briefly without the hub being gone.
    # huggingface_hub parses HF_HUB_ETAG_TIMEOUT as a whole number of seconds.
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(math.ceil(timeout)))
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ["HF_ENDPOINT"] = endpoint
    import requests
    from huggingface_hub import HfApi, configure_http_backend, snapshot_download
    from huggingface_hub.utils import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    configure_http_backend(sessions_with_timeout(timeout))
    try:
        files = HfApi().list_repo_files(repo, revision=revision)
        weights = SAFETENSORS_PATTERNS
        if not any(f.endswith(".safetensors") for f in files):
            weights = PYTORCH_PATTERNS
        snapshot_download(repo, revision=revision, local_dir=out, allow_patterns=CONFIG_PATTERNS + weights)
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        raise FetchError(f"{repo}@{revision} was not found on the hub: {one_line(err)}") from err
    except HfHubHTTPError as err:
        raise FetchError(f"download of {repo} failed: {one_line(err)}") from err
    except requests.exceptions.Timeout as err:
        raise FetchError(
            f"the hub at {endpoint} did not respond within {timeout:g} s, so no weights were downloaded; "
            "try again later or raise --timeout, or leave MODEL_DIR unset to use synthetic weights"
        ) from err
    except OSError as err:
        # requests' ConnectionError is an OSError, and so are
        # huggingface_hub's offline errors.
        raise FetchError(f"download of {repo} from {endpoint} failed ({one_line(err)}): {OFFLINE_HINT}") from err
    if not os.path.exists(os.path.join(out, "config.json")):
        raise FetchError(f"{repo} has no config.json, so it is not a Hugging Face model repository")


def sessions_with_timeout(timeout):
    """Return a huggingface_hub backend factory whose sessions give every
    request without a timeout one of timeout seconds.

    huggingface_hub 0.26 sends its metadata requests (repo_info,
    list_repo_files) with no timeout, so a host that accepts connections
    but never responds would hang them forever.
    """
    import requests
    from huggingface_hub.utils import _http

    # The default factory mounts huggingface_hub's own adapters; fall back
    # to a plain session if a later version renames it.
    make_session = getattr(_http, "_default_backend_factory", requests.Session)

    def factory():
        session = make_session()
        send = session.request

        def request(method, url, **kwargs):
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            return send(method, url, **kwargs)

        session.request = request
        return session

    return factory


def one_line(err):
    """Return the first line of err's message."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", default="openlm-research/open_llama_3b", help="Hugging Face repository, owner/name")
    parser.add_argument("--out", default="models/open_llama_3b", help="directory to download into")
    parser.add_argument("--revision", default="main", help="branch, tag or commit of the repository")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the connection probe and metadata requests"
    )
    args = parser.parse_args(argv)
    if args.repo.count("/") != 1:
        parser.error(f"--repo {args.repo!r} must be owner/name, for example openlm-research/open_llama_3b")
    if args.timeout <= 0:
        parser.error("--timeout must be a positive number of seconds")

    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT)
    try:
        probe(endpoint, args.timeout)
        fetch(endpoint, args.repo, args.out, args.revision, args.timeout)
    except FetchError as err:
        print(f"fetch_model: {err}", file=sys.stderr)
        return 1
    print(f"fetch_model: downloaded {args.repo} to {args.out}; run the benchmarks on it with MODEL_DIR={args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
