"""Loom secrets workflows: YAML jobs with secret references, checked, compiled and run.

Modules, one concern each: :mod:`loader` (YAML with line numbers),
:mod:`schema` (JSON Schema validation), :mod:`check` (every problem at once),
:mod:`graph` (the job DAG and Graph IR), :mod:`guard` (debug-trace guard),
:mod:`resolve` (per-job resolution through providers), :mod:`inject`
(file-first injection), :mod:`docker` (``docker run`` command lines),
:mod:`runner` (subprocesses and streaming redaction), :mod:`receipt`.
"""
