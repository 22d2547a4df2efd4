"""The Python package against a real cluster (`make test` starts one and sets
FHE_KV_TEST_PGHOST / FHE_KV_TEST_PGPORT / FHE_KV_TEST_KEY_DIR). Real parameters, real
extension; small tables so the server-side kernels stay quick."""
import os
import pathlib

import psycopg
import pytest

import fhe_kv

HOST = os.environ.get("FHE_KV_TEST_PGHOST")
PORT = os.environ.get("FHE_KV_TEST_PGPORT", "5432")
KEY_DIR = pathlib.Path(os.environ.get("FHE_KV_TEST_KEY_DIR", "target/fhe-kv-test-keys"))

if not HOST:
    pytest.fail(
        "FHE_KV_TEST_PGHOST must point at a test cluster (run `make test`)",
        pytrace=False,
    )


def dsn(dbname: str) -> str:
    return f"host={HOST} port={PORT} user=postgres dbname={dbname}"


@pytest.fixture(scope="session")
def keys() -> fhe_kv.ClientKeys:
    # The cached test key is readable by the Postgres backends too, so it is loaded from
    # bytes here (load_client_key refuses group/world-readable files, see below).
    return fhe_kv.ClientKeys.from_bytes((KEY_DIR / "client.key").read_bytes())


@pytest.fixture(scope="session")
def server_key() -> bytes:
    return fhe_kv.read_server_key(KEY_DIR / "server.key")


def fresh_database(name: str, with_extension: bool = True) -> str:
    with psycopg.connect(dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    if with_extension:
        with psycopg.connect(dsn(name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION fhe_kv")
    return dsn(name)


@pytest.fixture(scope="module")
def db(keys, server_key):
    """A database with the extension and the test key registered; the psycopg
    connection and an fhe_kv client made from it."""
    url = fresh_database("py_fhe_kv")
    with psycopg.connect(url) as conn:
        kv = fhe_kv.Client.from_psycopg(conn, keys)
        assert kv.register_server_key(server_key) == keys.key_id
        yield conn, kv
        kv.close()


def test_typed_bucketed_table_put_get_delete_import_export(db):
    conn, kv = db
    info = kv.create_table("notes", 24, key_type="text:15", value_type="bytes:15")
    assert (info["layout"], info["key_type"], info["value_type"]) == ("bucketed", "text:15", "bytes:15")
    assert kv.put("notes", "patient-4711", b"blood: A+") == "inserted"
    assert kv.put("notes", "patient-4711", "blood: 0-") == "updated"  # str values as UTF-8
    assert kv.get("notes", "patient-4711") == b"blood: 0-"
    assert kv.get("notes", "nobody") is None
    report = kv.import_rows("notes", [(f"p{i}", f"v{i}".encode()) for i in range(10)] + [("p1", b"again")])
    assert report == {"inserted": 10, "updated": 0, "superseded": 1, "slots_rewritten": report["slots_rewritten"]}
    assert kv.get_many("notes", ["p0", "p1", "zz", "patient-4711"]) == [b"v0", b"again", None, b"blood: 0-"]
    assert kv.get_two_round("notes", "p3") == b"v3"
    assert kv.delete("notes", "p3") == "deleted"
    assert kv.delete("notes", "p3") == "not_found"
    exported = dict(kv.export_rows("notes"))
    assert exported == {**{f"p{i}": f"v{i}".encode() for i in range(10) if i not in (1, 3)},
                        "p1": b"again", "patient-4711": b"blood: 0-"}
    assert all(isinstance(k, str) for k in exported)  # text keys come back as str
    assert [t["name"] for t in kv.tables()] == ["notes"]


def test_leveled_table_two_round_set_get_delete_import_export(db):
    """A leveled table: ~20x fewer bootstraps per slot than flat; the SET runs two rounds."""
    conn, kv = db
    info = kv.create_table("vitals", 4, key_type="text:10", value_type="bytes:12", layout="leveled")
    assert (info["layout"], info["row_format"]) == ("leveled", "leveled-v2")
    assert kv.put("vitals", "p-1", b"pulse 61") == "inserted"
    assert kv.put("vitals", "p-1", "pulse 64") == "updated"
    assert kv.get("vitals", "p-1") == b"pulse 64"
    assert kv.get("vitals", "p-2") is None
    assert kv.import_rows("vitals", [("p-2", b"bp 120/80")])["inserted"] == 1
    assert kv.get_many("vitals", ["p-2", "p-9", "p-1"]) == [b"bp 120/80", None, b"pulse 64"]
    assert kv.get_two_round("vitals", "p-2") == b"bp 120/80"
    assert kv.delete("vitals", "p-1") == "deleted"
    assert dict(kv.export_rows("vitals")) == {"p-2": b"bp 120/80"}


def test_bucketed_leveled_table_owner_writes_server_get_and_delete(db):
    """Buckets of leveled slots: the key owner writes; the server's GET and DELETE
    bootstrap ~8 times per candidate slot (docs/leveled.md)."""
    conn, kv = db
    info = kv.create_table("labs", 24, key_type="u16", value_type="u16", layout="bucketed-leveled")
    assert (info["layout"], info["row_format"]) == ("bucketed", "bucket-leveled-v1")
    assert kv.put("labs", 7, 70) == "inserted"
    assert kv.put("labs", 7, 71) == "updated"
    assert kv.get_many("labs", [7, 8]) == [71, None]
    enc = kv.encrypt_query_key("labs", 7)
    (answer,) = conn.execute("SELECT fhe_kv.fhe_get('labs'::regclass, %s)::bytea", (enc,)).fetchone()
    assert kv.decrypt_result("labs", answer) == 71
    (status,) = conn.execute("SELECT fhe_kv.fhe_delete('labs'::regclass, %s)::bytea", (enc,)).fetchone()
    conn.commit()
    assert kv.decrypt_status(status) == "deleted"
    assert kv.get("labs", 7) is None
    # Three write-backs so far (two puts and the server's DELETE); a refresh
    # re-seals every bucket and starts the count again.
    assert [t["writes"] for t in kv.tables() if t["name"] == "labs"] == [3]
    assert kv.refresh("labs") > 0
    assert [t["writes"] for t in kv.tables() if t["name"] == "labs"] == [0]
    assert kv.get_many("labs", [7, 8]) == [None, None]
    # No server-side round 1 there: the bucket read is the two-round GET, in one round.
    with pytest.raises(psycopg.errors.WrongObjectType, match="bucket-leveled-v1"):
        conn.execute("SELECT fhe_kv.fhe_locate('labs'::regclass, %s)", (enc,))
    conn.rollback()


def test_flat_integer_table_with_server_side_kernels(db):
    conn, kv = db
    kv.create_table("small", 2, key_type="u8", value_type="u8", layout="flat")
    assert kv.put("small", 7, 70) == "inserted"
    assert kv.get("small", 7) == 70
    assert kv.get_two_round("small", 7) == 70
    assert kv.get("small", 8) is None
    assert kv.delete("small", 7) == "deleted"
    assert kv.grow("small", 2) == 4


def test_own_sql_through_psycopg(db, keys):
    """Any driver: the package makes the bytea arguments and reads the answers."""
    conn, kv = db
    kv.create_table("raw", 2, key_type="u8", value_type="u8", layout="flat")
    (status,) = conn.execute(
        "SELECT fhe_kv.fhe_set('raw'::regclass, %s, %s)::bytea",
        (keys.encrypt_key(5, bits=8), keys.encrypt_value(50, bits=8)),
    ).fetchone()
    conn.commit()
    assert keys.decrypt_set_status(status) == "inserted"
    (result,) = conn.execute(
        "SELECT fhe_kv.fhe_get('raw'::regclass, %s)::bytea", (kv.encrypt_query_key("raw", 5),)
    ).fetchone()
    assert keys.decrypt_get(result) == 50
    assert kv.decrypt_result("raw", result) == 50
    assert keys.decrypt(result) == "found 50"


def test_errors_carry_the_cli_message_hint_and_sqlstate(db, keys):
    conn, kv = db
    conn.execute("CREATE TABLE plain (id int)")
    conn.commit()
    with pytest.raises(fhe_kv.Error) as e:
        kv.get("plain", 1)
    assert "is not an fhe_kv table" in str(e.value)
    assert "fhe-kv create-table" in e.value.hint
    with pytest.raises(fhe_kv.Error) as e:
        kv.put("small", 1, 1000)  # a u8 table
    assert "does not fit" in str(e.value) or "fit" in str(e.value)
    with pytest.raises(fhe_kv.Error) as e:
        kv.create_table("bad", 0)
    assert e.value.sqlstate is not None
    with pytest.raises(TypeError):
        kv.get("small", 1.5)
    with pytest.raises(fhe_kv.Error) as e:
        fhe_kv.connect(keys, f"host={HOST} port=1 user=postgres")
    assert "could not connect" in str(e.value) and e.value.hint


def test_key_files(tmp_path, keys):
    path = tmp_path / "client.key"
    keys.save(str(path))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert fhe_kv.load_client_key(str(path)).key_id == keys.key_id
    with pytest.raises(fhe_kv.Error):
        keys.save(str(path))  # no silent overwrite
    path.chmod(0o644)
    with pytest.raises(fhe_kv.Error) as e:
        fhe_kv.load_client_key(str(path))
    assert "chmod 600" in e.value.hint
    assert repr(keys) == f"ClientKeys(key_id='{keys.key_id}')"


def test_session_only_key_with_connect(keys, server_key):
    url = fresh_database("py_fhe_kv_session")
    with fhe_kv.connect(keys, url) as kv:
        assert kv.load_session_key(server_key) == keys.key_id
        kv.create_table("s", 2, key_type="u8", value_type="u8", layout="flat")
        assert kv.put("s", 1, 10) == "inserted"
        assert kv.get("s", 1) == 10
    with fhe_kv.connect(keys, url) as other:
        assert other.table("s")["key_id"] == keys.key_id
        with pytest.raises(fhe_kv.Error) as e:
            other.get("s", 1)
        assert e.value.sqlstate == "55000"
        assert "load_session_key" in e.value.hint
    with pytest.raises(fhe_kv.Error) as e:
        kv.get("s", 1)
    assert "closed" in str(e.value)


def test_generate_keys(tmp_path):
    keys, server_key = fhe_kv.generate_keys()
    assert len(keys.key_id) == 32 and len(server_key) > 10_000_000
    fhe_kv.write_server_key(str(tmp_path / "server.key"), server_key)
    assert fhe_kv.read_server_key(str(tmp_path / "server.key")) == server_key
