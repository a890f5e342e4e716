"""Reading YAML files that may be hostile: plain data only, bounded in size and in what its aliases expand to.

``yaml.safe_load`` builds an alias once and shares it, so a 1 KB file of nested aliases (an "alias bomb") loads
instantly; whatever walks the result (``OmegaConf.create``, a comparison, a dump) then visits every expanded node,
billions of them. The file is composed into YAML's node graph first (linear in the file), the size it expands to
is counted over that graph with each node counted once (linear too), and only a bounded document is constructed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf._utils import get_yaml_loader  # the rules of OmegaConf.load (YAML 1.2 floats, no duplicate keys)
from omegaconf.errors import OmegaConfBaseException

MAX_BYTES = 4 * 2**20
# The data once every alias is expanded, in nodes plus scalar characters: what a file of MAX_BYTES without aliases
# could hold at most, so aliases cannot make a file's data larger than an honest file of the allowed size.
MAX_EXPANDED = MAX_BYTES


class YamlFileError(ValueError):
    """A YAML file that is unreadable, too large, not valid YAML or expands beyond the bound."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


def expanded_size(root: yaml.Node) -> int:
    """Nodes plus scalar characters of the document with every alias expanded, each node of the graph visited once
    (its size memoised); raises ValueError for an alias that contains itself (its expansion is infinite)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # an explicit stack: a deeply nested file must not exhaust Python's recursion
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + (len(node.value) if isinstance(node, yaml.ScalarNode) else 0) + sum(
                sizes[id(child)] for child in children)
            continue
        if id(node) in open_nodes:
            raise ValueError(f"line {node.start_mark.line + 1}: an alias refers to a node that contains it")
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def read_yaml(path: str | Path, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """The plain data of a YAML file (``yaml.safe_load`` rules unless ``loader`` says otherwise), or a one-line
    :class:`YamlFileError` naming the file: larger than :data:`MAX_BYTES`, not valid YAML, or aliases expanding
    beyond :data:`MAX_EXPANDED`."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise YamlFileError(path, f"cannot read ({error.strerror or error})") from None
    if len(raw) > MAX_BYTES:
        raise YamlFileError(path, f"larger than {MAX_BYTES} bytes; expected a YAML config of at most that size")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise YamlFileError(path, f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    parser = loader(text)
    try:
        node = parser.get_single_node()
        if node is None:
            return None
        size = expanded_size(node)
        if size > MAX_EXPANDED:
            raise YamlFileError(path, f"its aliases expand to {size} nodes and characters, more than "
                                      f"{MAX_EXPANDED}; expected a YAML config without an alias bomb")
        return parser.construct_document(node)
    except YamlFileError:
        raise
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        raise YamlFileError(path, f"not valid YAML ({_describe(error)})") from None
    finally:
        parser.dispose()


def _describe(error: Exception) -> str:
    """A YAML error on one line: the problem and where (the parser's own message spans several lines)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or (str(error).strip().splitlines() or [type(error).__name__])[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def read_omegaconf(path: str | Path) -> DictConfig | ListConfig:
    """``OmegaConf.load`` of a bounded file (:func:`read_yaml` with OmegaConf's YAML rules); an empty file is an
    empty config, and anything but a mapping or a list is a :class:`YamlFileError`."""
    data = read_yaml(path, get_yaml_loader())
    if data is None:
        return OmegaConf.create()
    if not isinstance(data, dict | list):
        raise YamlFileError(path, f"holds a {type(data).__name__}; expected a mapping of config keys")
    try:
        return OmegaConf.create(data)
    except OmegaConfBaseException as error:
        raise YamlFileError(path, f"not a config ({str(error).splitlines()[0]})") from None
