"""What one $validate-code request knows: options, version rules, code systems, issues."""

from __future__ import annotations

from dataclasses import dataclass, field

from vitalflow.terminology.codesystem import CodeSystemView
from vitalflow.terminology.fhir import issue
from vitalflow.terminology.registry import Registry, split_canonical, version_matches
from vitalflow.terminology.validate_displays import Designations
from vitalflow.terminology.validate_messages import text
from vitalflow.terminology.valueset import VersionRules

COMPLETE_OR_FRAGMENT = ("complete", "fragment")
STANDARDS_STATUS = "http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status"


def add_path(path: str | None, name: str) -> str:
    return f"{path}.{name}" if path else name


def vurl(resource: dict) -> str:
    url = resource.get("url") or "(unidentified)"
    return f"{url}|{resource['version']}" if resource.get("version") else url


def more_detailed(general: str | None, specific: str | None) -> bool:
    """True when `specific` is an instance of the pattern `general` (1.0.x -> 1.0.2)."""
    if not general or not specific or general == specific:
        return False
    return version_matches(general, specific)


@dataclass
class Options:
    """The request parameters that steer validation."""

    rules: VersionRules = field(default_factory=VersionRules)
    display_languages: list[str] | None = None  # displayLanguage (or the value set's)
    http_languages: list[str] | None = None  # Accept-Language
    infer_system: bool = False
    active_only: bool = False
    abstract_ok: bool = True
    display_warning: bool = False  # lenient-display-validation
    membership_only: bool = False
    supplements: list[str] = field(default_factory=list)  # useSupplement

    @property
    def languages(self) -> list[str] | None:
        return self.display_languages or self.http_languages

    def lang_summary(self) -> str:
        return ",".join(self.languages) if self.languages else "--"

    def version_base(self, url: str, version: str | None) -> str | None:
        """The version a reference resolves to after force, then default, then check rules."""
        if url in self.rules.force:
            return self.rules.force[url]
        if version:
            return version
        return self.rules.default.get(url) or self.rules.check.get(url)


@dataclass
class Request:
    """The inputs of one $validate-code call, already taken out of Parameters."""

    codeable: dict  # the codings to validate, always as a CodeableConcept
    mode: str  # "code" | "coding" | "codeableConcept"
    options: Options = field(default_factory=Options)

    @property
    def path(self) -> str:
        return {"code": "", "coding": "Coding", "codeableConcept": "CodeableConcept"}[self.mode]



class Issues:
    """An OperationOutcome being built; `if_new` drops an issue whose text is already there."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, severity: str, code: str, path: str | None, message_id: str | None,
            message: str, tx_type: str | None, if_new: bool = False) -> bool:
        if if_new and any(i["details"]["text"] == message for i in self.items):
            return False
        self.items.append(issue(severity, code, message, tx_type=tx_type,
                                message_id=message_id, expression=path or None))
        return True

    def has_errors(self) -> bool:
        return any(i["severity"] == "error" for i in self.items)


class PrepareError(Exception):
    """A problem with the value set itself, answered as result=false rather than HTTP 4xx."""

    def __init__(self, issue_: dict, unknown_system: str | None = None):
        super().__init__(issue_["details"]["text"])
        self.issue = issue_
        self.unknown_system = unknown_system


@dataclass
class State:
    """What the codings of one request accumulate while they are checked."""

    issues: Issues = field(default_factory=Issues)
    messages: list[str] = field(default_factory=list)
    unknown: dict[str, None] = field(default_factory=dict)  # ordered set of unknown systems
    inactive: bool = False
    inactive_path: str | None = None
    inactive_code: str | None = None
    status: str | None = None
    normal_form: str | None = None
    implied_system: str | None = None

    def see_status(self, cs: CodeSystemView, concept: dict, path: str, code: str) -> None:
        # The first coding that settles the status keeps it (a later one must not clear it).
        if not self.inactive:
            self.inactive = cs.is_inactive(concept)
            self.inactive_path, self.inactive_code = path, code
            self.status = cs.status(concept)


@dataclass
class Found:
    """Per-coding results: the version and content mode that answered, the displays seen."""

    displays: Designations = field(default_factory=Designations)
    version: str | None = None
    content: str | None = None
    default_language: str | None = "en"


class Context:
    """The registry as seen by one request, with the request's options and supplements."""

    def __init__(self, registry: Registry, options: Options):
        self.registry = registry
        self.options = options
        self.required_supplements: set[str] = set(options.supplements)
        self.used_supplements: set[str] = set()

    def versions(self, url: str) -> list[str]:
        return sorted(self.registry.versions("CodeSystem", url))

    def resource(self, url: str, version: str | None) -> dict | None:
        return self.registry.get("CodeSystem", url, version)

    def find_cs(self, url: str | None, version: str | None, issues: Issues | None = None, *,
                kinds: tuple[str, ...] = COMPLETE_OR_FRAGMENT, check_version: bool = False,
                apply_rules: bool = True, path: str | None = None) -> CodeSystemView | None:
        if not url:
            return None
        if apply_rules:
            version = self.options.version_base(url, version)
        res = self.resource(url, version)
        if res is None:
            return None
        content = res.get("content", "complete")
        if content != "complete" and content not in kinds or content == "supplement":
            return None
        cs = self.registry.codesystem(res["url"], res.get("version"),
                                      supplements=self.required_supplements)
        if cs is not None:
            for s in self.required_supplements:
                if cs.has_supplement(s):
                    self.used_supplements.add(s)
            if check_version and issues is not None:
                self.check_version(url, cs.version, issues, path)
        return cs

    def supplement(self, url: str, version: str | None) -> dict | None:
        res = self.resource(url, version)
        return res if res is not None and res.get("content") == "supplement" else None

    def check_version(self, url: str, version: str | None, issues: Issues,
                      path: str | None) -> None:
        wanted = self.options.rules.check.get(url)
        if wanted and not version_matches(wanted, version):
            issues.add("error", "exception", add_path(path, "version") if path is not None
                       else None, "VALUESET_VERSION_CHECK",
                       text("VALUESET_VERSION_CHECK", url, version, wanted), "version-error")

    def pin_value_set(self, url: str) -> str:
        base, version = split_canonical(url)
        version = self.options.version_base(base, version)
        return f"{base}|{version}" if version else url

    def canonical_status(self, issues: Issues, kind: str, resource: dict,
                         source: dict | None) -> None:
        """Information issues for references to draft, experimental or withdrawn content."""
        standards = _ext(resource, STANDARDS_STATUS)
        status = resource.get("status")
        ref = vurl(resource)
        mid = None
        if standards in ("deprecated", "withdrawn"):
            mid = "MSG_DEPRECATED" if standards == "deprecated" else "MSG_WITHDRAWN"
        elif status == "retired":
            mid = "MSG_RETIRED"
        elif source is not None:
            if resource.get("experimental") and not source.get("experimental"):
                mid = "MSG_EXPERIMENTAL"
            elif (status == "draft" or standards == "draft") and not (
                    source.get("status") == "draft" or _ext(source, STANDARDS_STATUS) == "draft"):
                mid = "MSG_DRAFT"
        if mid:
            issues.add("information", "business-rule", None, mid, text(mid, ref, "", kind),
                       "status-check", if_new=True)


def _ext(resource: dict, url: str):
    for e in resource.get("extension", []) or []:
        if e.get("url") == url:
            return e.get("valueCode") or e.get("valueString")
    return None
