"""Issue 19 item 9: `nova-pipeline db url|psql|stop` for the embedded PostgreSQL of the working directory."""

import json

import psycopg
from click.testing import CliRunner

from nova_pipeline.core import connections
from nova_pipeline.cli.main import main


def test_db_url_psql_and_stop_manage_the_embedded_server(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    try:
        res = runner.invoke(main, ["db", "url"], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        url = res.stdout.strip()
        assert url.startswith("postgresql://") and len(res.stdout.splitlines()) == 1
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert connections.running_embedded_postgres_url() == url

        capfd.readouterr()
        res = runner.invoke(main, ["db", "psql", "--", "-At", "-c", "SELECT 40 + 2"], catch_exceptions=False)
        assert res.exit_code == 0
        assert capfd.readouterr().out.strip() == "42"

        res = runner.invoke(main, ["db", "stop", "--json"], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout) == {"stopped": True, "data_dir": str(tmp_path / "data" / ".nova" / "pg")}
        assert connections.running_embedded_postgres_url() is None

        res = runner.invoke(main, ["db", "stop"], catch_exceptions=False)
        assert res.exit_code == 0 and res.stdout.startswith("not running:")

        res = runner.invoke(main, ["db", "url", "--json"], catch_exceptions=False)  # started again, same data
        assert res.exit_code == 0, res.output
        restarted = json.loads(res.stdout)["url"]
        with psycopg.connect(restarted) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        connections.stop_embedded_postgres()
