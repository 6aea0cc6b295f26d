"""Hardware profiles: one TOML data file per chip, every constant with its source and status.

A profile file (``hwmodel/profiles/*.toml``, or a user's own via ``--profile path.toml``)::

    [profile]
    name = "mychip"                 # the key in the JSON output
    title = "My chip (22 nm)"
    summary = "one paragraph: what the numbers mean and what they leave out"
    memory_included = false         # event energies already include the chip's memory traffic
    static_in_events = false        # the static power is already inside the event energies
    ann_profile = "self"            # price the equivalent ANN with this profile ("self" or a name)
    weight_bits = 32                # word widths for the memory-aware model
    state_bits = 32

    [energy.synop]                  # one constant: value, unit, status, source (+ optional note)
    value = 0.9
    unit = "pJ"
    status = "estimate"             # measured | pre-silicon | design | derived | estimate
    source = "Horowitz, ISSCC 2014: 32-bit float add"
    low = 0.9                       # optional range the source gives or implies (default: value);
    high = inf                      # high = inf: the value is a lower bound (e.g. a "minimum")

Priced constants: ``[energy]`` synop, mac (required), neuron_update or neuron_update_active +
neuron_update_inactive, spike, norm_op (one multiply-add y = a_t·x + b_t of a normalisation
that cannot be folded), hop_east_west + hop_north_south (one spike message crossing one mesh
router); ``[static]`` power (mW, of the whole chip) + time_step (ms); ``[memory]`` sram_8kb,
sram_32kb, sram_1mb (pJ per 64-bit access); ``[mapping]`` neurons_per_core, synapses_per_core,
cores_per_chip (+ optional fan_in_per_core, mesh_width) for ``mapping.py``. ``[reference]``
holds constants that are shown with their sources but never priced.

Every total is also priced at the low and at the high end of every constant's range
(``Profile.bound``): the energy is monotone in each constant, so those are its bounds.
"""
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

PROFILE_DIR = Path(__file__).parent / "profiles"
DEFAULT_ORDER = ("cmos45nm", "cmos45nm_int32", "cmos45nm_int8", "loihi", "truenorth", "spinnaker", "spinnaker2")
STATUSES = ("measured", "pre-silicon", "design", "derived", "estimate")
UNITS = {
    "energy": {"synop": "pJ", "mac": "pJ", "neuron_update": "pJ", "neuron_update_active": "pJ",
               "neuron_update_inactive": "pJ", "spike": "pJ", "norm_op": "pJ", "hop_east_west": "pJ",
               "hop_north_south": "pJ"},
    "static": {"power": "mW", "time_step": "ms"},
    "memory": {"sram_8kb": "pJ", "sram_32kb": "pJ", "sram_1mb": "pJ"},
    "mapping": {"neurons_per_core": "count", "synapses_per_core": "count", "fan_in_per_core": "count",
                "cores_per_chip": "count", "mesh_width": "count"},
}
TABLES = ("energy", "static", "memory", "mapping", "reference")
HEADER_KEYS = {"name": str, "title": str, "summary": str, "memory_included": bool, "static_in_events": bool,
               "ann_profile": str, "weight_bits": int, "state_bits": int}


class ProfileError(ValueError):
    """A profile that cannot be used; the message is one line."""


@dataclass
class Constant:
    """One number with its provenance."""

    key: str
    value: float
    unit: str
    status: str
    source: str
    note: str = ""
    low: float = None           # the range the source gives or implies; None: the value itself
    high: float = None          # inf: the value is a lower bound

    def bound(self, which):
        """The value at the ``"low"`` or ``"high"`` end of the range (``"value"``: itself)."""
        end = {"low": self.low, "high": self.high, "value": None}[which]
        return self.value if end is None else end

    @property
    def has_range(self):
        return self.bound("low") != self.value or self.bound("high") != self.value


@dataclass
class Profile:
    """A validated hardware profile (see the module docstring for the fields)."""

    name: str
    title: str
    summary: str
    path: str
    energy: dict
    static: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    mapping: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)
    memory_included: bool = False
    static_in_events: bool = False
    ann_profile: str = "self"
    weight_bits: int = 32
    state_bits: int = 32

    def e(self, key):
        """The value of an ``[energy]`` constant in pJ, 0.0 when the profile does not price it."""
        c = self.energy.get(key)
        return c.value if c is not None else 0.0

    @property
    def static_pj_per_step(self):
        """Static energy of one time step: P [mW] · Δt [ms] = P·Δt µJ = 10⁶·P·Δt pJ."""
        if not self.static:
            return 0.0
        return self.static["power"].value * self.static["time_step"].value * 1e6

    def m(self, key):
        """A ``[mapping]`` constant as an int, or None when the profile does not give it."""
        c = self.mapping.get(key)
        return int(c.value) if c is not None else None

    def constants(self):
        """Every constant, table by table: [(table, Constant)]."""
        return [(table, c) for table in TABLES for c in getattr(self, table).values()]

    def bound(self, which):
        """This profile with every priced constant at the ``"low"`` or ``"high"`` end of its range.

        Counts are non-negative and every energy term is a count times a constant (or a product
        of constants, as static power × time step), so the energy is monotone in each constant
        and the two ends bound it. The mapping is not varied: it is a design, not a measurement.
        """
        if which == "value":
            return self
        at = lambda table: {k: replace(c, value=c.bound(which)) for k, c in table.items()}
        return replace(self, energy=at(self.energy), static=at(self.static), memory=at(self.memory))


def builtin_names():
    """Names of the profiles shipped in ``hwmodel/profiles``, in the report's order."""
    names = sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
    return [n for n in DEFAULT_ORDER if n in names] + [n for n in names if n not in DEFAULT_ORDER]


def _constant(where, table, key, raw, unit=None):
    cw = f"{where}: [{table}.{key}]"
    if not isinstance(raw, dict):
        raise ProfileError(f"{cw} must be a table with value, unit, status and source")
    unknown = set(raw) - {"value", "unit", "status", "source", "note", "low", "high"}
    if unknown:
        raise ProfileError(f"{cw} has unknown field(s) {sorted(unknown)}")
    for name in ("value", "unit", "status", "source"):
        if name not in raw:
            raise ProfileError(f"{cw} is missing {name!r} (every constant needs value, unit, status, source)")
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
        raise ProfileError(f"{cw} value must be a finite number >= 0, got {value!r}")
    low, high = raw.get("low"), raw.get("high")
    for name, end in (("low", low), ("high", high)):
        if end is not None and (isinstance(end, bool) or not isinstance(end, (int, float)) or math.isnan(end)):
            raise ProfileError(f"{cw} {name} must be a number, got {end!r}")
    if low is not None and not 0 <= low <= value:
        raise ProfileError(f"{cw} low must satisfy 0 <= low <= value, got low={low!r}, value={value!r}")
    if high is not None and not high >= value:
        raise ProfileError(f"{cw} high must be >= value (inf for a lower bound), got high={high!r}, value={value!r}")
    if unit is not None and raw["unit"] != unit:
        raise ProfileError(f"{cw} unit must be {unit!r}, got {raw['unit']!r}")
    if raw["status"] not in STATUSES:
        raise ProfileError(f"{cw} status must be one of {', '.join(STATUSES)}, got {raw['status']!r}")
    if not isinstance(raw["source"], str) or not raw["source"].strip():
        raise ProfileError(f"{cw} source must be a non-empty string")
    return Constant(key=key, value=float(value), unit=str(raw["unit"]), status=raw["status"],
                    source=" ".join(raw["source"].split()), note=" ".join(str(raw.get("note", "")).split()),
                    low=None if low is None else float(low), high=None if high is None else float(high))


def _table(where, data, table, required=(), together=()):
    raw = data.get(table, {})
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: [{table}] must be a table")
    units = UNITS.get(table)
    if units is not None:
        unknown = sorted(set(raw) - set(units))
        if unknown:
            raise ProfileError(f"{where}: [{table}] has unknown constant(s) {unknown}; known: {', '.join(units)}")
    out = {key: _constant(where, table, key, val, None if units is None else units[key]) for key, val in raw.items()}
    for key in required:
        if key not in out:
            raise ProfileError(f"{where}: [{table}] needs {key!r}")
    for group in together:
        present = [k for k in group if k in out]
        if present and len(present) != len(group):
            raise ProfileError(f"{where}: [{table}] needs all of {list(group)} or none, got {present}")
    return out


def parse_profile(data, where="<profile>"):
    """Validate the parsed TOML of one profile and return a ``Profile``."""
    unknown = sorted(set(data) - set(("profile",) + TABLES))
    if unknown:
        raise ProfileError(f"{where}: unknown table(s) {unknown}")
    header = data.get("profile")
    if not isinstance(header, dict) or "name" not in header:
        raise ProfileError(f"{where}: needs a [profile] table with a name")
    for key, value in header.items():
        kind = HEADER_KEYS.get(key)
        if kind is None:
            raise ProfileError(f"{where}: [profile] has unknown key {key!r}; known: {', '.join(HEADER_KEYS)}")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ProfileError(f"{where}: [profile] {key} must be a {kind.__name__}, got {value!r}")
    energy = _table(where, data, "energy", required=("synop", "mac"),
                    together=(("neuron_update_active", "neuron_update_inactive"), ("hop_east_west", "hop_north_south")))
    if "neuron_update" in energy and "neuron_update_active" in energy:
        raise ProfileError(f"{where}: [energy] gives neuron_update and neuron_update_active; choose one")
    for key in ("weight_bits", "state_bits"):
        if header.get(key, 32) < 1:
            raise ProfileError(f"{where}: [profile] {key} must be positive")
    return Profile(name=header["name"], title=header.get("title", header["name"]), summary=header.get("summary", ""),
                   path=where, energy=energy,
                   static=_table(where, data, "static", together=(("power", "time_step"),)),
                   memory=_table(where, data, "memory", together=(("sram_8kb", "sram_32kb", "sram_1mb"),)),
                   mapping=_mapping(where, data),
                   reference=_table(where, data, "reference"),
                   memory_included=header.get("memory_included", False),
                   static_in_events=header.get("static_in_events", False),
                   ann_profile=header.get("ann_profile", "self"),
                   weight_bits=header.get("weight_bits", 32), state_bits=header.get("state_bits", 32))


def _mapping(where, data):
    """The ``[mapping]`` table: all three core limits or none; counts are positive integers."""
    out = _table(where, data, "mapping", together=(("neurons_per_core", "synapses_per_core", "cores_per_chip"),))
    if ("fan_in_per_core" in out or "mesh_width" in out) and "cores_per_chip" not in out:
        raise ProfileError(f"{where}: [mapping] needs neurons_per_core, synapses_per_core and cores_per_chip")
    for key, c in out.items():
        if c.value < 1 or c.value != int(c.value) or c.has_range:
            raise ProfileError(f"{where}: [mapping.{key}] must be a positive whole number without a range")
    return out


def load_profile(spec):
    """Load and validate one profile.

    Parameters
    ----------
    spec : str or Path
        A built-in name (``"loihi"``) or the path of a TOML file.

    Returns
    -------
    Profile

    Raises
    ------
    ProfileError
        One line: unknown name, unreadable file, invalid TOML, or a constant without value,
        unit, status or source.
    """
    spec = str(spec)
    path = where = Path(spec)
    if not (spec.endswith(".toml") or path.exists()):
        if spec not in builtin_names():
            raise ProfileError(f"unknown profile {spec!r}; built in: {', '.join(builtin_names())}, "
                               "or give a path to a .toml file")
        path = PROFILE_DIR / f"{spec}.toml"
        where = Path("hwmodel", "profiles", path.name)   # reports name the package's file, not this machine's path
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such profile file") from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{path}: not valid TOML ({e})") from None
    except UnicodeDecodeError as e:      # tomllib decodes the bytes first: not a TOMLDecodeError
        raise ProfileError(f"{path}: not valid TOML, which is UTF-8 text ({e})") from None
    except OSError as e:
        raise ProfileError(f"{path}: cannot read ({e.strerror})") from None
    return parse_profile(data, str(where))


def load_profiles(specs=None):
    """Profiles for ``specs`` (names or paths; all builtins when empty), names unique."""
    profiles = [load_profile(s) for s in (specs or builtin_names())]
    seen = set()
    for p in profiles:
        if p.name in seen:
            raise ProfileError(f"two profiles are named {p.name!r}; names must be unique")
        seen.add(p.name)
    return profiles
