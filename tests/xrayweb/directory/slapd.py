"""A real OpenLDAP server for the directory sign-in tests: Debian's slapd, started as a plain
process on loopback ports with a generated configuration (slapd.conf, an mdb database under a
temporary folder), a test CA and server certificate made with openssl for LDAPS and StartTLS,
and seeded people and groups. A missing slapd fails the test that needs it, never skips it."""

import os
import shutil
import subprocess
from pathlib import Path

import ldap
import ldap.modlist
import pytest

from tests.xrayweb.dicomnet.peers import free_port, process_end, wait_until

INSTALL_HINT = "`make test` installs it (apt-get install slapd ldap-utils)"
SUFFIX = "dc=hospital,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
# A group of names must have a member: every group holds this DN, so it is never empty.
NOBODY = f"cn=nobody,{SUFFIX}"


def group_dn(name: str) -> str:
    return f"cn={name},{GROUPS}"


def person_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile {work}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {work}/ca.pem
TLSCertificateFile {work}/server.pem
TLSCertificateKeyFile {work}/server.key
database mdb
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {work}/db
maxsize 10485760
access to attrs=userPassword by anonymous auth by * none
access to * by * read
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def ca_make(folder: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 (ca.pem, server.pem, server.key)."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=xrayweb test CA",
        cwd=folder,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=folder,
    )
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        cwd=folder,
    )


class Slapd:
    """One slapd with plain LDAP (StartTLS offered) on ``port`` and LDAPS on ``tls_port``.
    Its ports and database are kept across ``stop()`` and ``start()``: a directory that
    went away and came back."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.tls_port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def tls_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> str:
        return str(self.work / "ca.pem")

    def setup(self) -> None:
        slapd = shutil.which("slapd", path=os.pathsep.join(["/usr/sbin", os.environ["PATH"]]))
        if slapd is None or shutil.which("openssl") is None:
            pytest.fail(f"slapd or openssl is not installed: {INSTALL_HINT}", pytrace=False)
        self.binary = slapd
        (self.work / "db").mkdir(parents=True, exist_ok=True)
        ca_make(self.work)
        (self.work / "slapd.conf").write_text(
            CONFIG.format(
                work=self.work, suffix=SUFFIX, root_dn=ROOT_DN, root_password=ROOT_PASSWORD
            )
        )

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        urls = f"{self.uri}/ {self.tls_uri}/"
        self.log = (self.work / "slapd.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "-f", str(self.work / "slapd.conf"), "-h", urls, "-d", "0"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        if not wait_until(self._answers, timeout=10):
            self.stop()
            pytest.fail(f"slapd did not answer on {self.uri}: {self.work / 'slapd.log'}")

    def stop(self) -> None:
        if self.process is None:
            return
        process_end(self.process)
        self.process = None
        self.log.close()

    def _answers(self) -> bool:
        try:
            self.admin().unbind_s()
        except ldap.LDAPError:
            return False
        return True

    def admin(self):
        """A connection bound as the directory's root (the directory's own administrator)."""
        connection = ldap.initialize(self.uri)
        connection.set_option(ldap.OPT_NETWORK_TIMEOUT, 2)
        connection.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
        return connection

    def _add(self, connection, dn: str, attrs: dict[str, list[str]]) -> None:
        encoded = {k: [v.encode() for v in values] for k, values in attrs.items()}
        connection.add_s(dn, ldap.modlist.addModlist(encoded))

    def seed(self, people: dict[str, dict], groups: dict[str, list[str]]) -> None:
        """Empty the tree and add ``people`` (uid -> {"password", "given", "sn", "mail"}) and
        ``groups`` (name -> member uids)."""
        connection = self.admin()
        try:
            self._clear(connection)
            self._add(
                connection,
                SUFFIX,
                {
                    "objectClass": ["dcObject", "organization"],
                    "dc": ["hospital"],
                    "o": ["Test hospital"],
                },
            )
            for ou in ("people", "groups"):
                self._add(
                    connection,
                    f"ou={ou},{SUFFIX}",
                    {"objectClass": ["organizationalUnit"], "ou": [ou]},
                )
            for uid, p in people.items():
                self._add(
                    connection,
                    person_dn(uid),
                    {
                        "objectClass": ["inetOrgPerson"],
                        "uid": [uid],
                        "cn": [f"{p['given']} {p['sn']}"],
                        "givenName": [p["given"]],
                        "sn": [p["sn"]],
                        "mail": [f"{uid}@hospital.test"],
                        "userPassword": [p["password"]],
                    },
                )
            for name, members in groups.items():
                self._add(
                    connection,
                    group_dn(name),
                    {
                        "objectClass": ["groupOfNames"],
                        "cn": [name],
                        "member": [NOBODY, *(person_dn(u) for u in members)],
                    },
                )
        finally:
            connection.unbind_s()

    def _clear(self, connection) -> None:
        try:
            found = connection.search_s(SUFFIX, ldap.SCOPE_SUBTREE, "(objectClass=*)", ["1.1"])
        except ldap.NO_SUCH_OBJECT:
            return
        for dn, _ in sorted(found, key=lambda e: -len(e[0])):  # leaves first
            connection.delete_s(dn)

    def member_add(self, group: str, uid: str) -> None:
        self._modify(group_dn(group), ldap.MOD_ADD, person_dn(uid))

    def member_remove(self, group: str, uid: str) -> None:
        self._modify(group_dn(group), ldap.MOD_DELETE, person_dn(uid))

    def person_delete(self, uid: str) -> None:
        connection = self.admin()
        try:
            connection.delete_s(person_dn(uid))
        finally:
            connection.unbind_s()

    def _modify(self, dn: str, op: int, value: str) -> None:
        connection = self.admin()
        try:
            connection.modify_s(dn, [(op, "member", [value.encode()])])
        finally:
            connection.unbind_s()
