"""The user's own code named "package.module:attribute" or "path/to/file.py:attribute" (an
experiment, a model's spec, a classifier): imported on first use, with one line for each way
it fails. Below `experiments` and `models`, which both find code this way."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import sysconfig
import traceback
from pathlib import Path
from typing import Any

from dmvae.errors import ConfigError, UserCodeError


def import_attribute(spec: str, what: str = "experiment") -> Any:
    """The object "package.module:attribute" or "path/to/file.py:attribute" names (the user's
    code: `what` is an experiment or a classifier), with one line for each way it fails."""
    where, _, attribute = spec.rpartition(":")
    module_name = where
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.exists():
                raise ConfigError(f"{what} file {where} does not exist (in {Path.cwd()})")
            module_name = f"dmvae_user_{path.stem}"
            loader = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(loader)
            sys.modules[module_name] = module
            loader.loader.exec_module(module)
        else:
            if "" not in sys.path:
                sys.path.insert(0, "")  # as `python -m` does: modules in the working directory
            module = importlib.import_module(where)
    except ConfigError:
        raise
    except ModuleNotFoundError as err:
        if where.endswith(".py") or not _names_module(err.name, where):
            raise _failed_import(where, module_name, err, what) from err
        raise ConfigError(
            f"cannot import {where!r} for {what} {spec!r} ({err}); install it or run from "
            "the folder that holds it"
        ) from err
    except Exception as err:  # the user's code: any error it raises while it is imported
        raise _failed_import(where, module_name, err, what) from err
    if not hasattr(module, attribute):
        raise ConfigError(f"{where} has no attribute {attribute!r} ({what} {spec!r})")
    return getattr(module, attribute)


def _names_module(missing: str | None, where: str) -> bool:
    """Whether a ModuleNotFoundError is about `where` (or a package above it) itself, rather
    than about an import inside it."""
    return missing is not None and (where == missing or where.startswith(missing + "."))


def _failed_import(where: str, module_name: str, err: Exception, what: str) -> UserCodeError:
    """One line for a user's module that raised while it was imported: which file, the
    exception and its message, the line of the user's code, and how to see the traceback."""
    sys.modules.pop(module_name, None)  # a half-executed module is never reused
    kind = "file" if where.endswith(".py") else "module"
    line = _user_line(err, Path(where) if kind == "file" else None)
    message = str(err).splitlines()[0] if str(err) else ""
    return UserCodeError(
        f"{what} {kind} {where} failed while it was imported: {type(err).__name__}"
        f"{': ' + message if message else ''}{line}; fix it there"
    )


def _user_line(err: BaseException, path: Path | None) -> str:
    """ " (FILE, line N)" for the deepest frame of the traceback in the user's code: the
    experiment file itself, or any file outside dmvae, Python and installed packages."""
    frames = traceback.extract_tb(err.__traceback__)
    if isinstance(err, SyntaxError) and err.filename and err.lineno:
        return f" ({err.filename}, line {err.lineno})"
    library = {Path(p).resolve() for p in sysconfig.get_paths().values()}
    library.add(Path(__file__).resolve().parent)  # dmvae itself

    def users(filename: str) -> bool:
        if filename.startswith("<"):
            return False
        file = Path(filename).resolve()
        if path is not None:
            return file == path.resolve()
        return not any(file.is_relative_to(folder) for folder in library)

    mine = [f for f in frames if users(f.filename)]
    return f" ({mine[-1].filename}, line {mine[-1].lineno})" if mine else ""
