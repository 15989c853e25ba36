"""The application's state keys (``web.AppKey``), apart from the modules that set
and read them, so that route modules and the app factory import no one another."""

from __future__ import annotations

from aiohttp import web

from anchor.config import AnchorConfig
from anchor.consortium.checkpoints import CheckpointSigner
from anchor.consortium.member import MemberNode
from anchor.ingest.pipeline import Ingestor
from anchor.ingest.verify import BatchVerifier
from anchor.ledger.ports import LedgerStore
from anchor.metrics import AnchorMetrics
from anchor.provenance.dispositions import DispositionWatcher

__all__ = [
    "CONFIG",
    "DISPOSITIONS",
    "INGESTOR",
    "MEMBER",
    "METRICS",
    "OPENAPI",
    "SIGNER",
    "STARTED_AT",
    "STORE",
    "VERIFIER",
]

CONFIG = web.AppKey("config", AnchorConfig)
STORE = web.AppKey("store", LedgerStore)
SIGNER = web.AppKey("signer", CheckpointSigner)
METRICS = web.AppKey("metrics", AnchorMetrics)
VERIFIER = web.AppKey("verifier", BatchVerifier)
INGESTOR = web.AppKey("ingestor", Ingestor)
# Set only on a consortium member node (anchor.consortium.member).
MEMBER = web.AppKey("member", MemberNode)
DISPOSITIONS = web.AppKey("dispositions", DispositionWatcher)
STARTED_AT = web.AppKey("started_at", float)
# The OpenAPI document this app serves; route modules added to the app (anchor/http/pages.py)
# add their own paths to it in their setup function, so /openapi.json covers them too.
OPENAPI = web.AppKey("openapi", dict)
