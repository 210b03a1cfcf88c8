"""Config YAML read so that the file cannot choose how much memory or time reading it takes.

A YAML alias (``*a``) repeats the node its anchor (``&a``) names: nine anchors of nine aliases
each (a "billion laughs" of 300 bytes) stand for 9^9 nodes, which ``yaml.safe_load`` shares but
OmegaConf, which LLaMA-Factory and ``recipes.config`` merge configs with, copies out (minutes and
gigabytes). Our configs need neither anchors nor aliases, so they are refused from the parser's
event stream, which costs time in proportion to the text, before anything builds a node; so
are files over ``MAX_CONFIG_BYTES`` and nesting deeper than ``MAX_DEPTH`` (the composer recurses
once per level). Every config YAML we read goes through here: ``check`` (the config, its
overrides and the other configs of its tree), ``report``/``web`` (``--config``) and
``counterfactual --predict-config``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

MAX_CONFIG_BYTES = 1 << 20  # a LLaMA-Factory config is a few kB
MAX_DEPTH = 32


class UnsafeYamlError(ValueError):
    """A config YAML refused before it was built: the message is one line and names the file."""


def check_yaml_text(text: str, name: str) -> None:
    """UnsafeYamlError if ``text`` has an anchor, an alias, nesting deeper than ``MAX_DEPTH`` or
    is not valid YAML; reads the parser's events only, so no node is built."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                mark = event.start_mark
                raise UnsafeYamlError(
                    f"{name}: line {mark.line + 1}: YAML anchors and aliases (&name, *name) are not "
                    "accepted in a config: write the values out"
                )
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise UnsafeYamlError(
                        f"{name}: line {event.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels"
                    )
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as e:
        raise UnsafeYamlError(f"{name}: not valid YAML: {str(e).splitlines()[0]}") from None


def read_config_yaml(path: str | Path, name: str | None = None):
    """The YAML document of a config file, refused (UnsafeYamlError naming ``name``, default the
    path) when it is larger than ``MAX_CONFIG_BYTES`` or has anchors, aliases or deep nesting.
    OSError passes through (the caller words a missing file its own way)."""
    p = Path(path)
    name = name or str(p)
    with open(p, "rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise UnsafeYamlError(f"{name}: larger than {MAX_CONFIG_BYTES} bytes: not a config")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnsafeYamlError(f"{name}: not UTF-8 text (byte {e.start})") from None
    check_yaml_text(text, name)
    return yaml.safe_load(text)
