"""The code location: Definitions built from the spec named by NOVA_SPEC (default data/nova.spec.yaml)."""

import os

from nova_pipeline.orchestration.defs.build import build_definitions
from nova_pipeline.core.spec import load_spec

SPEC_PATH = os.environ.get("NOVA_SPEC", "data/nova.spec.yaml")

defs = build_definitions(load_spec(SPEC_PATH), SPEC_PATH)
