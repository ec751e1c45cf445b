"""The built-in risk table: kinds of port that should rarely face a network.

Admins change severities on the Risks page; this only seeds the table.
"""

from django.db import migrations

# (protocol, port, nmap service name, label, category, severity 0-4)
BUILTIN = [
    ("tcp", 21, "ftp", "FTP", "clear-text", 3),
    ("tcp", 22, "ssh", "SSH", "remote-admin", 2),
    ("tcp", 23, "telnet", "Telnet", "clear-text", 4),
    ("tcp", 25, "smtp", "SMTP", "clear-text", 1),
    ("tcp", 80, "", "HTTP without TLS", "clear-text", 1),
    ("tcp", 110, "pop3", "POP3", "clear-text", 2),
    ("tcp", 111, "rpcbind", "RPC portmapper", "remote-admin", 3),
    ("tcp", 135, "msrpc", "Microsoft RPC", "remote-admin", 3),
    ("tcp", 139, "netbios-ssn", "NetBIOS session", "file-sharing", 3),
    ("tcp", 143, "imap", "IMAP", "clear-text", 2),
    ("udp", 161, "snmp", "SNMP", "clear-text", 3),
    ("tcp", 389, "ldap", "LDAP", "clear-text", 2),
    ("tcp", 445, "microsoft-ds", "SMB", "file-sharing", 3),
    ("tcp", 512, "exec", "rexec", "remote-admin", 4),
    ("tcp", 513, "login", "rlogin", "remote-admin", 4),
    ("tcp", 873, "rsync", "rsync", "file-sharing", 3),
    ("tcp", 1433, "ms-sql-s", "Microsoft SQL Server", "database", 3),
    ("tcp", 1521, "oracle-tns", "Oracle database", "database", 3),
    ("tcp", 1883, "mqtt", "MQTT", "broker", 2),
    ("tcp", 2049, "nfs", "NFS", "file-sharing", 3),
    ("tcp", 2375, "docker", "Docker API without TLS", "control-plane", 4),
    ("tcp", 2376, "", "Docker API", "control-plane", 3),
    ("tcp", 2379, "etcd-client", "etcd", "control-plane", 4),
    ("tcp", 3306, "mysql", "MySQL / MariaDB", "database", 3),
    ("tcp", 3389, "ms-wbt-server", "Remote Desktop (RDP)", "remote-admin", 3),
    ("tcp", 4222, "", "NATS", "broker", 2),
    ("tcp", 5005, "", "Java debug wire protocol (JDWP)", "debug", 4),
    ("tcp", 5432, "postgresql", "PostgreSQL", "database", 3),
    ("tcp", 5672, "amqp", "AMQP (RabbitMQ)", "broker", 2),
    ("tcp", 5900, "vnc", "VNC", "remote-admin", 3),
    ("tcp", 5984, "couchdb", "CouchDB", "database", 3),
    ("tcp", 5985, "wsman", "WinRM", "remote-admin", 3),
    ("tcp", 6379, "redis", "Redis", "cache", 3),
    ("tcp", 6443, "", "Kubernetes API server", "control-plane", 3),
    ("tcp", 8086, "", "InfluxDB", "database", 3),
    ("tcp", 9092, "", "Kafka", "broker", 2),
    ("tcp", 9200, "", "Elasticsearch", "database", 3),
    ("tcp", 9229, "", "Node.js inspector", "debug", 4),
    ("tcp", 10250, "", "Kubernetes kubelet", "control-plane", 4),
    ("tcp", 11211, "memcache", "Memcached", "cache", 3),
    ("tcp", 15672, "", "RabbitMQ management", "remote-admin", 2),
    ("tcp", 27017, "mongodb", "MongoDB", "database", 3),
]


def create(apps, schema_editor):
    RiskRule = apps.get_model("inventory", "RiskRule")
    for protocol, port, name, label, category, severity in BUILTIN:
        RiskRule.objects.get_or_create(
            protocol=protocol,
            port=port,
            defaults={
                "service_name": name,
                "label": label,
                "category": category,
                "severity": severity,
                "builtin": True,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("inventory", "0010_risk_rules")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
