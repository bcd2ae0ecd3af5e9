"""Prints the keys LiteLLM understands in the config sections litellm-impl checks.

Run with the pinned LiteLLM's Python; tests/real_litellm.rs compares its output with the
data file src/known_keys.txt (so the lists cannot go stale silently) and rewrites the file
from it with

    UPDATE_GOLDEN=1 cargo test -p litellm-impl-cli --test real_litellm known_keys

Output: the data file's format without its comment header: per section a `[section]`
line, then its keys, sorted, one a line.
"""
import inspect
import os
import re
import sys
import types

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm  # noqa: E402
from litellm import Router  # noqa: E402
from litellm.proxy import _types  # noqa: E402

root = os.path.dirname(litellm.__file__)


def grep(pattern):
    found = set()
    regex = re.compile(pattern)
    for directory, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as f:
                    found.update(regex.findall(f.read()))
    return found


# router_settings: keyword arguments of Router(...), which the proxy passes them to.
router = {p for p in inspect.signature(Router.__init__).parameters if p not in ("self", "kwargs", "args")}

# general_settings: the typed model plus every key the proxy reads.
general = set(_types.ConfigGeneralSettings.model_fields)
general |= grep(r"general_settings(?:\.get\(|\[)\s*[\"']([A-Za-z0-9_]+)[\"']")

# litellm_settings: the proxy sets each key as an attribute of the litellm module, and
# handles some keys itself.
module_attrs = {
    name
    for name, value in vars(litellm).items()
    if not name.startswith("_") and not isinstance(value, types.ModuleType)
}
special = grep(r"(?:key|k) == [\"']([A-Za-z0-9_]+)[\"']")
litellm_settings = module_attrs | special

for section, keys in (
    ("general_settings", general),
    ("litellm_settings", litellm_settings),
    ("router_settings", router),
):
    print("[" + section + "]")
    for key in sorted(keys):
        print(key)
sys.stdout.flush()
