"""A secured single-node KRaft broker: SASL_SSL with SCRAM-SHA-512 users and ACLs.

Like production clusters, and unlike :class:`devkafka.broker.KafkaBroker`:

- the client listener is ``SASL_SSL``: TLS with a certificate from a CA made at start
  (:mod:`devkafka.tls`, nothing committed) whose subject alternative names are
  ``localhost``/``127.0.0.1`` (clients keep hostname verification on), and SCRAM-SHA-512
  users written into the metadata log by ``StorageTool format --add-scram``, or added later
  through the admin API (:meth:`SecureKafkaBroker.add_user`);
- brokers talk to each other on that listener as the super user ``admin``; the controller
  listener takes SASL/PLAIN from one static ``controller`` principal (KRaft keeps SCRAM
  credentials in the metadata log, so the controller cannot use them);
- the KRaft ``StandardAuthorizer`` is on with ``allow.everyone.if.no.acl.found=false``: a
  principal may do nothing without an ACL. :func:`service_acls` are the ones the service
  needs, and no more.

    python -m devkafka.secure up      # .run/kafka-secure, port 9093; prints the client settings
    python -m devkafka.secure down
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devkafka.broker import ROOT, BrokerError, KafkaBroker
from devkafka.tls import TlsFiles, make_tls

__all__ = ["MECHANISM", "SecureKafkaBroker", "service_acls"]

MECHANISM = "SCRAM-SHA-512"
DEFAULT_SECURE_RUN_DIR = ROOT.parent / ".run" / "kafka-secure"
_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
_PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"


def _password() -> str:
    return secrets.token_urlsafe(18)


@dataclass
class SecureKafkaBroker(KafkaBroker):
    """A :class:`KafkaBroker` with a SASL_SSL listener, SCRAM users and the StandardAuthorizer.

    ``users`` (name -> password) are created at format time besides the super user
    ``admin``; their passwords are random unless given.
    """

    users: dict[str, str] = field(default_factory=dict)
    admin_password: str = field(default_factory=_password)
    controller_password: str = field(default_factory=_password)
    tls: TlsFiles | None = None

    @property
    def tls_files(self) -> TlsFiles:
        if self.tls is None:
            self.tls = make_tls(self.data_dir / "tls", _password())
        return self.tls

    def client_config(self, user: str, password: str | None = None) -> dict[str, Any]:
        """librdkafka connection settings of ``user`` (their own password unless given)."""
        known = {"admin": self.admin_password, **self.users}
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": user,
            "sasl.password": password if password is not None else known[user],
            "ssl.ca.location": str(self.tls_files.ca),
        }

    def admin_config(self) -> dict[str, Any]:
        return self.client_config("admin")

    def listener_properties(self) -> list[str]:
        tls = self.tls_files
        admin_jaas = f'{_SCRAM} required username="admin" password="{self.admin_password}";'
        controller_jaas = (
            f'{_PLAIN} required username="controller" password="{self.controller_password}" '
            f'user_controller="{self.controller_password}";'
        )
        return [
            f"listeners=SASL_SSL://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
            "inter.broker.listener.name=SASL_SSL",
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            f"listener.name.sasl_ssl.sasl.enabled.mechanisms={MECHANISM}",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={admin_jaas}",
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={controller_jaas}",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={tls.keystore}",
            f"ssl.keystore.password={tls.store_password}",
            f"ssl.key.password={tls.store_password}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls.ca}",
            "ssl.client.auth=none",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:admin;User:controller",
            "allow.everyone.if.no.acl.found=false",
        ]

    def format_arguments(self) -> list[str]:
        users = {"admin": self.admin_password, **self.users}
        args: list[str] = []
        for name, password in users.items():
            args.append(f"--add-scram={MECHANISM}=[name={name},password={password}]")
        return args

    def add_user(self, name: str, password: str | None = None) -> str:
        """Create (or reset) SCRAM user ``name`` through the admin API; returns the password."""
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        password = password or _password()
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        admin = AdminClient(self.admin_config())
        upsert = UserScramCredentialUpsertion(name, info, password.encode())
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout=30)
        self.users[name] = password
        return password

    def grant(self, bindings: list[object]) -> None:
        """Create ACL bindings (:class:`confluent_kafka.admin.AclBinding`) as the super user."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(self.admin_config())
        for future in admin.create_acls(bindings).values():  # type: ignore[arg-type]
            future.result(timeout=30)


def service_acls(
    user: str,
    *,
    input_topics: list[str],
    group: str,
    output_topics: list[str],
    transactional_id: str | None = None,
) -> list[object]:
    """The least the service needs: READ its input topics and group, WRITE its output topics
    (verdicts, latest verdicts, dead letters) and, in exactly-once mode, WRITE its
    transactional id. READ and WRITE imply DESCRIBE; WRITE on a topic allows the idempotent
    producer (KIP-679), so nothing is granted on the cluster."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    def allow(kind: ResourceType, name: str, operation: AclOperation) -> AclBinding:
        return AclBinding(
            kind,
            name,
            ResourcePatternType.LITERAL,
            f"User:{user}",
            "*",
            operation,
            AclPermissionType.ALLOW,
        )

    bindings = [allow(ResourceType.TOPIC, t, AclOperation.READ) for t in input_topics]
    bindings.append(allow(ResourceType.GROUP, group, AclOperation.READ))
    bindings += [allow(ResourceType.TOPIC, t, AclOperation.WRITE) for t in output_topics]
    if transactional_id is not None:
        bindings.append(allow(ResourceType.TRANSACTIONAL_ID, transactional_id, AclOperation.WRITE))
    return list(bindings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkafka.secure", description=__doc__)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_SECURE_RUN_DIR)
    parser.add_argument("--port", type=int, default=int(os.environ.get("KAFKA_PORT", "9093")))
    args = parser.parse_args(argv)
    broker = SecureKafkaBroker(args.dir, port=args.port)
    try:
        if args.action == "down":
            broker.stop_and_remove()
            print("secure kafka down")
            return 0
        if not broker.start_fresh():
            print(f"secure kafka already running (pid {broker.pid_file.read_text().strip()})")
            return 0
        (args.dir / "admin.json").write_text(json.dumps(broker.admin_config()))
        (args.dir / "admin.json").chmod(0o600)
        print(f"secure kafka up at {broker.bootstrap_servers} in {broker.started_in_s:.1f}s")
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
