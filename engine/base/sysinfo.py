"""The machine: how many cores this process may use, and a description (CPU model and ISA flags matter
for OpenVINO speed) for benchmarks and reports."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import sys


def available_cores() -> int:
    """Logical CPUs this process may run on: the affinity mask where the OS has one (Linux; a container
    or ``taskset`` may allow fewer than the machine has), else ``os.cpu_count()``; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


#: environment variable overriding the memory budget (MiB), e.g. for tests or a shared server
BUDGET_ENV = "BOXSEG_MEMORY_BUDGET_MIB"


def total_ram_bytes() -> int | None:
    """Physical memory of the machine in bytes, or None where the OS does not say."""
    try:  # Linux, macOS
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        pass
    if sys.platform == "win32":
        import ctypes

        class _MemStatus(ctypes.Structure):
            _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                        ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                        ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                        ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                        ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

        st = _MemStatus()
        st.dwLength = ctypes.sizeof(_MemStatus)
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(st)):
            return int(st.ullTotalPhys)
    return None


def memory_budget_bytes() -> int:
    """The most bytes one opened image's voxels may take: a quarter of the machine's RAM (the app also
    holds the model-domain copy, the label map, display slices and the model), at least 256 MiB;
    ``BOXSEG_MEMORY_BUDGET_MIB`` overrides it. 8 GiB RAM is assumed where the OS does not say."""
    env = os.environ.get(BUDGET_ENV, "").strip()
    if env:
        try:
            return max(1, int(float(env) * 2**20))
        except ValueError:
            pass
    ram = total_ram_bytes() or 8 * 2**30
    return max(256 * 2**20, ram // 4)


def describe() -> dict:
    info = {"cpu": platform.processor() or "?", "flags": [], "cores": os.cpu_count(), "ram_gib": None,
            "os": platform.platform(), "python": sys.version.split()[0]}
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        ident = {}
        for line in text.splitlines():
            key = line.split(":", 1)[0].strip()
            if key in ("cpu family", "model", "stepping") and key not in ident:
                ident[key] = line.split(":", 1)[1].strip()
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                # virtual machines often report a bare "AMD EPYC" / "Intel Xeon": family/model/stepping
                # tell the generations apart (e.g. AMD family 25 model 17 = Zen 4 "Genoa")
                if ident:
                    info["cpu"] += " (" + ", ".join(f"{k} {v}" for k, v in ident.items()) + ")"
                flags = set(line.split(":", 1)[1].split())
                info["flags"] = sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16",
                                                "amx_int8", "avx_vnni"})
                break
        with open("/proc/meminfo") as f:
            info["ram_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass

    for dist in ("openvino", "torch", "nncf", "numpy"):
        try:  # metadata only: the engine must not import torch or nncf
            info[dist] = md.version(dist)
        except md.PackageNotFoundError:
            info[dist] = None
    return info


def markdown(info: dict) -> str:
    return (f"- CPU: {info['cpu']} ({info['cores']} logical cores), ISA: {', '.join(info['flags']) or '-'}\n"
            f"- RAM: {info['ram_gib']} GiB; OS: {info['os']}; Python {info['python']}\n"
            f"- openvino {info['openvino']}, torch {info['torch']}, nncf {info['nncf']}, numpy {info['numpy']}\n")
