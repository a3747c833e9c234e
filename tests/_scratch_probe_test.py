import os, subprocess, psycopg2
from tests.test_postgres import postgres  # noqa
def test_probe(postgres):
    admin = psycopg2.connect(host="127.0.0.1", port=postgres.port, user=postgres.user, password=postgres.password, dbname="postgres")
    admin.autocommit = True
    for d in ("p1", "p2", "p3"):
        admin.cursor().execute(f"CREATE DATABASE {d}")
    env = dict(os.environ, PGPORT=str(postgres.port), PGUSER=postgres.user, PGPASSWORD=postgres.password)
    for scheme, extra, d in (("postgresql", "-", "p1"), ("postgresql", "/tmp/pg3", "p2"), ("postgresql+psycopg2", "/tmp/pg3", "p3")):
        out = subprocess.run(["/work/main/.venv/bin/python", "/tmp/pg_scheme_probe.py", scheme, extra, d], env=env, capture_output=True, text=True)
        print(out.stdout, out.stderr[-1500:] if "Traceback" in out.stderr and "FAILED" not in out.stdout else "")
