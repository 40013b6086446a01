"""jsonargparse's parse errors, which run to 10-20 lines, said in one line with the closest valid
names: a misspelled key, class or choice ("did you mean margin?")."""

from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import re

#: classes a config may name by their short name, by the key that takes them
CLASS_KEYS = {"model": ("sslbench.methods", "LocalizationMethod"), "data": ("datamodules", "AVDataset")}


def _closest(word: str, options) -> str:
    options = [str(o) for o in options]
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f"; did you mean {close[0]}?" if close else ""


def _known_classes(key: str) -> list[str]:
    """Short names of the classes ``key`` (``model``, ``data.train`` ...) accepts."""
    root = key.split(".")[0]
    if root not in CLASS_KEYS:
        return []
    module_name, base_name = CLASS_KEYS[root]
    module = importlib.import_module(module_name)
    if hasattr(module, "import_all"):
        module.import_all()
    names = getattr(module, "__all__", [])
    base = getattr(importlib.import_module(module_name), base_name)
    out = []
    for name in names:
        value = getattr(module, name, None)
        if inspect.isclass(value) and issubclass(value, base) and value is not base and not inspect.isabstract(value):
            out.append(name)
    return sorted(out)


def _parameters(class_path: str) -> list[str]:
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError):
        return []
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]


def _keys(message: str) -> list[str]:
    """The nested ``Parser key "..."`` names, outermost first, without ``init_args``."""
    return [k for k in re.findall(r'Parser key "([^"]+)"', message) if k != "init_args"]


def one_line(message: str, option_names: list[str] | None = None) -> str:
    """The gist of a jsonargparse error ``message``; ``option_names`` are the parser's own flags."""
    keys = _keys(message)
    where = "--" + ".".join(keys) if keys else None
    literal = re.search(r"Expected a typing\.Literal\[(.*?)\](?:\. Got value: (.+))?", message)
    given_value = re.search(r"Given value: (.+)", message)
    if literal and (literal.group(2) or given_value):
        choices = ast.literal_eval(f"[{literal.group(1)}]")
        given = (literal.group(2) or given_value.group(1)).strip()
        return f"{where}: {given!r} is not one of {', '.join(map(str, choices))}{_closest(given, choices)}"
    option = re.search(r"Option '([^']+)' is not accepted", message)
    class_path = re.search(r"class_path '([^']+)'", message)
    if option and class_path:
        params = _parameters(class_path.group(1))
        name = class_path.group(1).rpartition(".")[2]
        return f"{where}: {name} has no option {option.group(1)!r}{_closest(option.group(1), params)}"
    bad_class = re.search(r"Expected a dot import path string: (\S+)", message) or re.search(
        r"Import path (\S+) does not correspond to a subclass", message)
    if bad_class and keys:
        given = bad_class.group(1)
        known = _known_classes(keys[0])
        listed = f" (one of {', '.join(known)})" if known else ""
        return f"{where}: unknown class {given!r}{_closest(given, known)}{listed}"
    required = re.search(r"the following arguments are required: (.+)", message)
    if required:
        name = class_path.group(1).rpartition(".")[2] if class_path else None
        missing = required.group(1).strip()
        return f"{where}: {name} needs {missing}" if where and name else f"missing required option(s): {missing}"
    unknown = re.search(r"unrecognized arguments: (.+)", message, re.IGNORECASE)
    if unknown:
        given = unknown.group(1).split()[0]
        flag = given.split("=")[0]
        return f"unrecognized option {flag}{_closest(flag, option_names or [])}"
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    gist = [line for line in lines if not line.startswith(("Given value", "Subtypes", "Errors", "- Expected a <class 'NoneType'>"))]
    return " ".join(gist[:3])
