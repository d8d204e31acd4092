"""Studies from a PACS over DICOMweb (QIDO-RS, WADO-RS, STOW-RS), on ``dicomweb-client``.

``DicomWeb(url)`` lists studies and series, loads a CT series into the same ``Study``
as :func:`~radipop_widgets.io.load_study` and stores results (a DICOM SEG) back. A
series is downloaded as its DICOM files (in the transfer syntax the PACS holds them)
into a cache folder of the workspace, then read by the file loader: the same checks,
the same errors, the same HU and geometry; opening it again reads the cache.

Credentials come from the environment (``RADIPOP_DICOMWEB_USER`` /
``RADIPOP_DICOMWEB_PASSWORD``) or from a JSON config file readable by its owner only
(``RADIPOP_DICOMWEB_CONFIG``, default ``~/.config/radipop-widgets/dicomweb.json``)::

    {"https://pacs.example.org/dicom-web": {"user": "...", "password": "...",
                                            "ca_bundle": "/etc/ssl/hospital-ca.pem"}}

never from a notebook argument, and they appear in no message or ``repr``. HTTPS
certificates are checked (``ca_bundle`` names a CA file); plain HTTP is accepted for
this machine only (127.0.0.1, localhost) unless ``allow_http=True``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pydicom
import requests
from dicomweb_client import DICOMwebClient
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import persist
from .errors import (
    NotCTError,
    PacsAuthError,
    PacsConfigError,
    PacsError,
    PacsNotFoundError,
    PacsStoreError,
    PacsUnreachableError,
    StudyError,
)
from .io import load_study
from .study import Study

URL_ENV, USER_ENV, PASSWORD_ENV = ("RADIPOP_DICOMWEB_URL", "RADIPOP_DICOMWEB_USER",
                                   "RADIPOP_DICOMWEB_PASSWORD")
CA_BUNDLE_ENV, CONFIG_ENV = "RADIPOP_DICOMWEB_CA_BUNDLE", "RADIPOP_DICOMWEB_CONFIG"
DEFAULT_CONFIG = Path("~/.config/radipop-widgets/dicomweb.json")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
AS_STORED = (("application/dicom", "*"),)     # WADO-RS: the files as the PACS holds them
SERIES_FIELDS = ("SeriesDescription", "Modality", "SeriesNumber",
                 "NumberOfSeriesRelatedInstances", "StudyInstanceUID")
STUDY_FIELDS = ("PatientID", "PatientName", "StudyDate", "StudyDescription",
                "AccessionNumber", "ModalitiesInStudy", "NumberOfStudyRelatedSeries")
FILTERS = {"patient": "PatientID", "patient_name": "PatientName", "date": "StudyDate",
           "modality": "ModalitiesInStudy", "accession": "AccessionNumber"}
HELP = (f"set {USER_ENV} and {PASSWORD_ENV} in the server's environment, or put them in the "
        f"config file (${CONFIG_ENV}, default {DEFAULT_CONFIG}, mode 600)")


@dataclass(frozen=True)
class PacsSeries:
    """One series on the server: what QIDO-RS says of it."""

    study_uid: str
    series_uid: str
    modality: str
    description: str
    n_slices: int | None
    number: int | None = None


@dataclass(frozen=True)
class PacsStudy:
    """One study on the server with its series (those of the modality searched for)."""

    study_uid: str
    patient_id: str
    date: str
    description: str
    accession: str
    series: tuple[PacsSeries, ...] = ()
    patient_name: str = field(default="", repr=False)   # shown, never logged


def dicom_date_range(date) -> str:
    """A QIDO date filter from a date, ``"YYYYMMDD"``, ``"YYYYMMDD-YYYYMMDD"`` (either end
    may be left open) or a (first, last) pair.

    >>> dicom_date_range("2024-01-02"), dicom_date_range(("20240101", "20240131"))
    ('20240102', '20240101-20240131')
    >>> dicom_date_range((dt.date(2024, 3, 1), None)), dicom_date_range("2024-03-01-")
    ('20240301-', '20240301-')
    >>> dicom_date_range("last week")
    Traceback (most recent call last):
    ...
    radipop_widgets.errors.PacsError: date 'last week' is not a date: give YYYYMMDD, YYYY-MM-DD or a range YYYYMMDD-YYYYMMDD.
    """
    def one(value):
        if value in (None, ""):
            return ""
        if isinstance(value, dt.date):
            return value.strftime("%Y%m%d")
        text = str(value).strip().replace("-", "")
        if re.fullmatch(r"\d{8}", text):
            with contextlib.suppress(ValueError):
                dt.datetime.strptime(text, "%Y%m%d")
                return text
        raise PacsError(f"date {date!r} is not a date: give YYYYMMDD, YYYY-MM-DD or a range "
                        "YYYYMMDD-YYYYMMDD.")
    if isinstance(date, (tuple, list)) and len(date) == 2:
        return f"{one(date[0])}-{one(date[1])}"
    text = re.sub(r"(\d{4})-(\d\d)-(\d\d)", r"\1\2\3", str(date).strip())
    bounds = re.fullmatch(r"(\d{8})?-(\d{8})?", text)
    if bounds and any(bounds.groups()):
        return f"{one(bounds[1])}-{one(bounds[2])}"
    return one(date)


def load_config(path=None) -> dict:
    """The config file's servers (URL -> settings); {} when there is no file. Refused
    when others may read it (it holds passwords)."""
    path = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG).expanduser()
    if not path.exists():
        return {}
    if path.stat().st_mode & 0o077:
        raise PacsConfigError(f"{path} holds PACS passwords and others may read it: run "
                              f"chmod 600 {path}.")
    try:
        servers = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PacsConfigError(f"{path} is not a readable JSON file ({exc.__class__.__name__}):"
                              " write it as {\"https://server/dicom-web\": {\"user\": ..., "
                              "\"password\": ...}}.") from None
    if not isinstance(servers, dict) or not all(isinstance(v, dict) for v in servers.values()):
        raise PacsConfigError(f"{path}: expected an object of server URL -> settings.")
    return {url.rstrip("/"): settings for url, settings in servers.items()}


def default_url(config=None) -> str:
    """The server to offer: ``$RADIPOP_DICOMWEB_URL``, else the config file's first."""
    return os.environ.get(URL_ENV) or next(iter(load_config(config)), "")


class DicomWeb:
    """A DICOMweb server (a PACS such as Orthanc, dcm4chee, Google Healthcare).

    Parameters
    ----------
    url : str
        The DICOMweb root, e.g. ``https://pacs.example.org/dicom-web``. No credentials in
        it: they come from the environment or the config file (see the module).
    ca_bundle : path, optional
        CA certificates to verify the server's HTTPS certificate with (default: the
        config file's ``ca_bundle``, ``$RADIPOP_DICOMWEB_CA_BUNDLE``, else the system's).
    timeout : float or (connect, read)
        Seconds to wait for the server.
    retries : int
        Attempts after a failed connection or a busy answer (429, 502-504).
    cache : path, optional
        Folder of downloaded series (default ``<workspace>/../pacs-cache``).
    workspace : path, optional
        The sessions' workspace (for the default cache).
    allow_http : bool
        Accept plain HTTP to another machine (credentials would cross the network
        readable): only inside a network you trust (also the config file's
        ``"allow_http": true`` for that server).
    config : path, optional
        The config file (default ``$RADIPOP_DICOMWEB_CONFIG`` or
        ``~/.config/radipop-widgets/dicomweb.json``).
    """

    def __init__(self, url, *, ca_bundle=None, timeout=(5.0, 60.0), retries=2, cache=None,
                 workspace=None, allow_http=False, config=None):
        url = str(url).strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PacsConfigError(f"{url!r} is not a server address: give the DICOMweb root, "
                                  "e.g. https://pacs.example.org/dicom-web.")
        if parts.username or parts.password:
            raise PacsConfigError("the server address holds credentials: remove them from it "
                                  f"and {HELP}.")
        settings = load_config(config).get(url, {})
        allow_http = allow_http or settings.get("allow_http") is True
        if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS and not allow_http:
            raise PacsConfigError(f"{url} is plain HTTP to another machine: credentials and "
                                  "patient data would cross the network unencrypted. Use "
                                  "https:// (inside a trusted network: allow_http=True, or "
                                  '"allow_http": true for this server in the config file).')
        self.url = url
        user = os.environ.get(USER_ENV) or settings.get("user")
        password = os.environ.get(PASSWORD_ENV) or settings.get("password")
        self.authenticated = bool(user)
        ca_bundle = ca_bundle or settings.get("ca_bundle") or os.environ.get(CA_BUNDLE_ENV)
        if ca_bundle and not Path(ca_bundle).expanduser().is_file():
            raise PacsConfigError(f"CA bundle {ca_bundle} not found: give the path of the PEM "
                                  "file that holds your hospital's CA certificate.")
        self.http = _Session()
        self.http.auth = (user, password or "") if user else None
        self.http.verify = str(Path(ca_bundle).expanduser()) if ca_bundle else True
        retry = Retry(total=retries, connect=retries, read=retries, status=retries,
                      backoff_factor=0.2, status_forcelist=(429, 502, 503, 504),
                      allowed_methods=("GET",), raise_on_status=False)
        self.http.mount("http://", HTTPAdapter(max_retries=retry))
        self.http.mount("https://", HTTPAdapter(max_retries=retry))
        self.client = DICOMwebClient(url, session=self.http, timeout=timeout)
        self.client.set_http_retry_params(retry=False)      # urllib3 retries (above)
        self.cache = Path(cache).expanduser() if cache is not None else \
            persist.workspace_dir(workspace).parent / "pacs-cache"

    def __repr__(self):
        return f"DicomWeb({self.url!r}, authenticated={self.authenticated})"

    # -------------------------------------------------------------- queries
    def studies(self, *, limit=200, **filters) -> list[PacsStudy]:
        """Studies matching ``filters`` (QIDO-RS), each with its series.

        Filters: ``patient`` (PatientID), ``patient_name`` (``*`` and ``?`` wildcards),
        ``date`` (see :func:`dicom_date_range`), ``modality`` (default ``"CT"``; None:
        any), ``accession``. Series are those of ``modality``, with their description and
        number of slices.
        """
        unknown = sorted(set(filters) - set(FILTERS))
        if unknown:
            raise PacsError(f"unknown filter {', '.join(unknown)}: use "
                            f"{', '.join(FILTERS)}.")
        filters.setdefault("modality", "CT")
        query = {}
        for name, value in filters.items():
            if value not in (None, ""):
                query[FILTERS[name]] = dicom_date_range(value) if name == "date" else str(value)
        with self._errors("searching for studies"):
            found = self.client.search_for_studies(search_filters=query, fields=STUDY_FIELDS,
                                                   limit=limit)
        studies = []
        for item in found:
            ds = pydicom.Dataset.from_json(item)
            uid = str(ds.get("StudyInstanceUID", ""))
            series = tuple(s for s in self.series(uid)
                           if not filters["modality"] or s.modality == filters["modality"])
            studies.append(PacsStudy(uid, str(ds.get("PatientID", "")),
                                     str(ds.get("StudyDate", "")),
                                     str(ds.get("StudyDescription", "")),
                                     str(ds.get("AccessionNumber", "")), series,
                                     str(ds.get("PatientName", ""))))
        return studies

    def series(self, study_uid) -> list[PacsSeries]:
        """The series of one study (QIDO-RS), by SeriesNumber."""
        with self._errors(f"listing the series of study {study_uid}"):
            found = self.client.search_for_series(study_uid, fields=SERIES_FIELDS)
        return sorted((_series(item, study_uid) for item in found),
                      key=lambda s: (s.number is None, s.number or 0, s.series_uid))

    def find_series(self, series_uid) -> PacsSeries:
        """The series with this SeriesInstanceUID (raises ``PacsNotFoundError``)."""
        with self._errors(f"looking up series {series_uid}"):
            found = self.client.search_for_series(
                search_filters={"SeriesInstanceUID": str(series_uid)}, fields=SERIES_FIELDS)
        if not found:
            raise PacsNotFoundError(f"series {series_uid} is not on {self.url}: search again "
                                    "(it may have been deleted or moved).")
        return _series(found[0], None)

    # -------------------------------------------------------------- loading
    def cache_folder(self, series_uid) -> Path:
        """Where the series' files are kept once downloaded."""
        server = hashlib.sha256(self.url.encode()).hexdigest()[:12]
        return self.cache / server / re.sub(r"[^0-9A-Za-z.]", "_", str(series_uid))

    def is_cached(self, series_uid) -> bool:
        return (self.cache_folder(series_uid) / ".series.json").is_file()

    def load(self, series_uid, progress=None, refresh=False) -> Study:
        """Load a CT series as a ``Study`` (WADO-RS), as ``load_study`` loads its files.

        A series downloaded before is read from the cache (no request) unless
        ``refresh``. ``progress(done, total)``: the download, then the reading (only the
        reading when cached). Raises
        ``NotCTError`` for another modality (before downloading), every ``StudyError`` of
        the file loader, ``PacsNotFoundError``, ``PacsAuthError``, ``PacsUnreachableError``.
        """
        folder = self.cache_folder(series_uid)
        if refresh:
            shutil.rmtree(folder, ignore_errors=True)
        reading = progress
        if not self.is_cached(series_uid):
            self._download(series_uid, folder, progress)
            reading = _second_half(progress)
        try:
            return load_study(folder, progress=reading)
        except StudyError as exc:
            shutil.rmtree(folder, ignore_errors=True)   # broken: ask the PACS next time
            raise _rephrased(exc, folder, f"PACS series {series_uid} on {self.url}") from exc

    def _download(self, series_uid, folder: Path, progress) -> None:
        info = self.find_series(series_uid)
        if info.modality and info.modality != "CT":
            raise NotCTError(f"PACS series {series_uid} on {self.url} ("
                             f"{info.description or 'no description'}) is {info.modality}, not CT; only CT in Hounsfield units can be "
                             "segmented. Choose a CT series of the study.")
        total = max(info.n_slices or 0, 1)
        partial = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        self.cache.mkdir(parents=True, mode=0o700, exist_ok=True)
        partial.mkdir(parents=True, mode=0o700)
        url = f"{self.client.base_url}/studies/{info.study_uid}/series/{series_uid}"
        headers = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
        try:
            with self._errors(f"downloading series {series_uid}"):
                # dicomweb-client's own GET and multipart reader, without parsing each file
                # into a pydicom Dataset and writing it again: the bytes go to the cache.
                response = self.client._http_get(url, headers=headers, stream=True)  # noqa: SLF001
                n = 0
                for n, part in enumerate(self.client._decode_multipart_message(  # noqa: SLF001
                        response, stream=True), 1):
                    (partial / f"{n:05d}.dcm").write_bytes(part)
                    if progress is not None:
                        progress(min(n, total), 2 * total)
            if n == 0:
                raise PacsNotFoundError(f"series {series_uid} on {self.url} holds no instances "
                                        "to download: send the series to the PACS again.")
            (partial / ".series.json").write_text(json.dumps({
                "server": self.url, "study_uid": info.study_uid, "series_uid": series_uid,
                "instances": n, "downloaded": dt.datetime.now(dt.timezone.utc).isoformat()}))
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(partial, folder)
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    # -------------------------------------------------------------- storing
    def store(self, path) -> list[str]:
        """Send a DICOM file (or every file of a folder) to the server (STOW-RS); returns
        the SOPInstanceUIDs it stored. A DICOM SEG exported by the session references its
        source series, so the PACS files it with the study."""
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        try:
            datasets = [pydicom.dcmread(f) for f in files]
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise PacsStoreError(f"{path}: not a DICOM file to send ({exc}); export the DICOM "
                                 "SEG first.") from None
        if not datasets:
            raise PacsStoreError(f"{path}: nothing to send; export the DICOM SEG first.")
        stored = []
        for study_uid in sorted({str(ds.StudyInstanceUID) for ds in datasets}):
            group = [ds for ds in datasets if str(ds.StudyInstanceUID) == study_uid]
            with self._errors(f"storing {len(group)} object(s)"):
                answer = self.client.store_instances(group, study_uid)
            failed = answer.get("FailedSOPSequence") or []
            if failed:
                reasons = ", ".join(f"{item.get('ReferencedSOPInstanceUID', '?')}: reason "
                                    f"{item.get('FailureReason', '?')}" for item in failed)
                raise PacsStoreError(f"{self.url} refused {len(failed)} of {len(group)} "
                                     f"object(s) ({reasons}); the server's log says why.")
            stored += [str(item.ReferencedSOPInstanceUID)
                       for item in answer.get("ReferencedSOPSequence") or []]
        return stored

    # -------------------------------------------------------------- errors
    @contextlib.contextmanager
    def _errors(self, action):
        """Turn requests' errors into PacsErrors whose message says the fix."""
        where = f"{action} on {self.url}"
        try:
            yield
        except requests.exceptions.SSLError:
            raise PacsUnreachableError(
                f"{where}: the server's HTTPS certificate could not be verified. Pass "
                f"ca_bundle= (or set {CA_BUNDLE_ENV}) to the CA certificate file of your "
                "hospital; never turn the check off.") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            why = "timed out" if isinstance(exc, requests.exceptions.Timeout) or \
                "timed out" in str(exc) else "connection refused or host unknown"
            raise PacsUnreachableError(
                f"{where}: the server cannot be reached ({why}). Check the address, that the "
                "PACS is running and that this machine may reach it (network, VPN, "
                "firewall).") from None
        except requests.exceptions.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else None
            if code in (401, 403):
                said = "refused the credentials" if self.authenticated else \
                    "asks for credentials and none are configured"
                raise PacsAuthError(f"{where}: the server {said} (HTTP {code}): {HELP}; ask "
                                    "the PACS administrator for an account.") from None
            if code == 404:
                raise PacsNotFoundError(f"{where}: not found on the server (HTTP 404). Check "
                                        "the address (the DICOMweb root, e.g. .../dicom-web) "
                                        "and search again.") from None
            raise PacsError(f"{where}: the server answered HTTP {code}. Try again; if it "
                            "persists, the server's log says why.") from None


class _Session(requests.Session):
    """requests' session, sending QIDO's ``*`` wildcard as it is: ``*`` may stand in a
    query unencoded (RFC 3986), and Orthanc 1.10 takes the encoded ``%2A`` literally. A
    CA bundle given here wins over ``$REQUESTS_CA_BUNDLE`` (requests lets the environment
    override a session's ``verify``)."""

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if isinstance(self.verify, str):
            settings["verify"] = self.verify
        return settings

    def send(self, request, **kwargs):
        head, sep, query = request.url.partition("?")
        request.url = head + sep + query.replace("%2A", "*")
        return super().send(request, **kwargs)


def _series(item: dict, study_uid) -> PacsSeries:
    ds = pydicom.Dataset.from_json(item)

    def integer(keyword):
        with contextlib.suppress(TypeError, ValueError):
            return int(ds.get(keyword))
        return None
    return PacsSeries(str(ds.get("StudyInstanceUID", study_uid) or study_uid),
                      str(ds.get("SeriesInstanceUID", "")), str(ds.get("Modality", "")),
                      str(ds.get("SeriesDescription", "")),
                      integer("NumberOfSeriesRelatedInstances"), integer("SeriesNumber"))


def _second_half(progress):
    """``progress`` of the reading, after the download's first half."""
    if progress is None:
        return None
    return lambda done, total: progress(total + done, 2 * total)


def _rephrased(exc: StudyError, folder: Path, name: str) -> StudyError:
    """The same error, naming the PACS series instead of the cache folder."""
    text = str(exc).replace(str(folder), name).replace(
        "Export the complete series again", "Send the complete series to the PACS again")
    new = type(exc).__new__(type(exc))
    new.__dict__.update(exc.__dict__)
    new.args = (text,)
    return new
