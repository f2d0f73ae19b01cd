# A throw-away PostgreSQL server for integration tests (sourced after
# common.sh).  PostgreSQL refuses to run as root, so as root every server
# command runs as the `postgres` user (runuser) on a directory it owns; as
# any other user, as that user.
#
#   pg_start DIR PORT   initdb into DIR/data (unless already there), listen
#                       on 127.0.0.1:PORT only, Unix socket in DIR/sock;
#                       start with pg_ctl -w and stop again at exit.  Sets:
#       PG_DIR PG_PORT PG_HOST(127.0.0.1) PG_SOCK PG_DB(mcptun)
#       PG_USER PG_PASSWORD  a login role that must give its password
#                            (scram-sha-256 over TCP); it may read every
#                            table in PG_DB and write nothing
#       PG_URL               postgresql://PG_USER:PG_PASSWORD@127.0.0.1:PORT/mcptun
#       PG_URL_TRUST         postgresql://postgres@127.0.0.1:PORT/mcptun
#                            (superuser, no password: trust)
#   pg_stop             fast shutdown (pg_stop immediate: crash-like)
#   pg_restart          restart on the same port (connections drop)
#   pg_psql SQL...      run each SQL as the superuser in PG_DB; prints rows
#                       unaligned, "|"-separated, no headers; stops on error
#   pg_seed             create and fill the test schema (see below)
#   pg_try_start        pg_start DIR=$T/pg on a free port and pg_seed, their
#                       output in $T/pg.out; PG_OK=1 if both worked, else
#                       PG_OK=0 (for tests whose PostgreSQL part is optional)
#   pg_server_yaml NAME [LINE...]
#                       a client servers: entry NAME (indented two spaces)
#                       for the test database: type postgres, a dsn for
#                       PG_USER, its password, then each LINE as a key of
#                       the entry (e.g. "max_rows: 100")
#
# Server binaries come from PG_BIN (default: the newest
# /usr/lib/postgresql/*/bin).

if [ -z "${PG_BIN:-}" ]; then
	PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
PG_HOST=127.0.0.1
PG_DB=mcptun
PG_USER=mcptun_ro
PG_PASSWORD=mcptun-test-pw

# _pg_as CMD...: run CMD as the database owner.
_pg_as() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_start() {
	PG_DIR=${1:?pg_start: DIR}
	PG_PORT=${2:?pg_start: PORT}
	PG_SOCK=$PG_DIR/sock
	PG_URL="postgresql://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB"
	PG_URL_TRUST="postgresql://postgres@$PG_HOST:$PG_PORT/$PG_DB"
	if [ ! -x "$PG_BIN/initdb" ]; then
		echo "pg_start: no PostgreSQL server binaries (PG_BIN=$PG_BIN)" >&2
		return 1
	fi
	mkdir -p "$PG_SOCK" || return 1
	[ "$(id -u)" = 0 ] && chown -R postgres: "$PG_DIR"
	if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
		_pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust \
		    -E UTF8 --locale=C.UTF-8 --no-sync >"$PG_DIR/initdb.log" 2>&1 || {
			echo "pg_start: initdb failed:" >&2
			tail -n 20 "$PG_DIR/initdb.log" >&2
			return 1
		}
		# Trust for the superuser and the socket; the password role must
		# give its password over TCP so password tests mean something.
		cat >"$PG_DIR/data/pg_hba.conf" <<EOF
local all all trust
host all $PG_USER 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
EOF
		cat >>"$PG_DIR/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
password_encryption = 'scram-sha-256'
timezone = 'UTC'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
shared_buffers = 32MB
log_min_messages = warning
EOF
		_pg_new=1
	else
		_pg_new=0
	fi
	_pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" \
	    -o "-p $PG_PORT" -w -t 60 start >/dev/null || {
		echo "pg_start: the server did not start:" >&2
		tail -n 20 "$PG_DIR/postgres.log" >&2
		return 1
	}
	at_exit "pg_stop immediate"
	if [ $_pg_new = 1 ]; then
		_pg_as "$PG_BIN/psql" -h "$PG_SOCK" -p "$PG_PORT" -d postgres -X -q \
		    -v ON_ERROR_STOP=1 >/dev/null <<EOF || return 1
CREATE DATABASE $PG_DB;
CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD';
\\c $PG_DB
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO $PG_USER;
EOF
	fi
}

pg_stop() {
	[ -n "${PG_DIR:-}" ] && [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
	_pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m "${1:-fast}" -w -t 60 \
	    stop >/dev/null
}

pg_restart() {
	_pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" \
	    -o "-p $PG_PORT" -m fast -w -t 60 restart >/dev/null
}

pg_psql() {
	# Rotate the arguments so each SQL becomes one -c argument, with no
	# eval and so no quoting trouble.
	set -- "$@" --end--
	while [ "$1" != --end-- ]; do
		set -- "$@" -c "$1"
		shift
	done
	shift
	_pg_as "$PG_BIN/psql" -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d "$PG_DB" \
	    -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

# pg_seed: a small shop schema with foreign keys and indexes, a table with
# every awkward type and NULLs, and a 10,000-row `events` table.  All values
# are fixed (no now(), no random()), so answers can be compared exactly.
#   customers(id, name, email UNIQUE, country, created_at)          5 rows
#   products(id, sku UNIQUE, name, price numeric(10,2))             4 rows
#   orders(id, customer_id -> customers, status, placed_at, total)  8 rows
#   order_items(order_id -> orders, product_id -> products, qty)   12 rows
#   types_demo(id, n numeric, b bytea, j jsonb, ts timestamp,
#              tstz timestamptz, d date, t text, big bigint, f float8,
#              flag bool, u uuid, arr int[])                        4 rows
#   events(id bigint, ts timestamptz, kind, customer_id, payload jsonb)
#                                                               10,000 rows
pg_seed() {
	_pg_as "$PG_BIN/psql" -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d "$PG_DB" \
	    -X -q -v ON_ERROR_STOP=1 >/dev/null <<'EOF'
BEGIN;
CREATE TABLE customers (
	id         integer PRIMARY KEY,
	name       text NOT NULL,
	email      text NOT NULL UNIQUE,
	country    char(2),
	created_at timestamptz NOT NULL
);
COMMENT ON TABLE customers IS 'People who buy things';
INSERT INTO customers VALUES
	(1, 'Ada Lovelace',   'ada@example.com',    'GB', '2024-01-02 10:00:00+00'),
	(2, 'Grace Hopper',   'grace@example.com',  'US', '2024-02-03 11:30:00+00'),
	(3, 'Émile Zola',     'emile@example.com',  'FR', '2024-03-04 12:45:00+00'),
	(4, 'Søren Kierkegaard', 'soren@example.com', 'DK', '2024-04-05 08:15:00+00'),
	(5, 'No Country',     'nc@example.com',     NULL, '2024-05-06 09:00:00+00');

CREATE TABLE products (
	id    integer PRIMARY KEY,
	sku   text NOT NULL UNIQUE,
	name  text NOT NULL,
	price numeric(10,2) NOT NULL CHECK (price >= 0)
);
INSERT INTO products VALUES
	(1, 'SKU-001', 'Widget', 9.99), (2, 'SKU-002', 'Gadget', 24.50),
	(3, 'SKU-003', 'Doohickey', 0.00), (4, 'SKU-004', 'Thingamajig', 1234.56);

CREATE TABLE orders (
	id          integer PRIMARY KEY,
	customer_id integer NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
	status      text NOT NULL CHECK (status IN ('new', 'paid', 'shipped', 'cancelled')),
	placed_at   timestamptz NOT NULL,
	total       numeric(12,2) NOT NULL
);
CREATE INDEX orders_customer_idx ON orders(customer_id);
CREATE INDEX orders_status_placed_idx ON orders(status, placed_at);
INSERT INTO orders VALUES
	(1, 1, 'paid',      '2024-06-01 10:00:00+00',   34.49),
	(2, 1, 'shipped',   '2024-06-02 10:00:00+00', 1234.56),
	(3, 2, 'new',       '2024-06-03 10:00:00+00',    9.99),
	(4, 2, 'cancelled', '2024-06-04 10:00:00+00',   49.00),
	(5, 3, 'paid',      '2024-06-05 10:00:00+00',    0.00),
	(6, 3, 'shipped',   '2024-06-06 10:00:00+00',   19.98),
	(7, 4, 'paid',      '2024-06-07 10:00:00+00', 1259.06),
	(8, 5, 'new',       '2024-06-08 10:00:00+00',   24.50);

CREATE TABLE order_items (
	order_id   integer NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
	product_id integer NOT NULL REFERENCES products(id),
	qty        integer NOT NULL CHECK (qty > 0),
	PRIMARY KEY (order_id, product_id)
);
CREATE INDEX order_items_product_idx ON order_items(product_id);
INSERT INTO order_items VALUES
	(1, 1, 1), (1, 2, 1), (2, 4, 1), (3, 1, 1), (4, 2, 2), (5, 3, 3),
	(6, 1, 2), (7, 4, 1), (7, 2, 1), (8, 2, 1), (2, 3, 1), (6, 3, 1);

CREATE TABLE types_demo (
	id   integer PRIMARY KEY,
	n    numeric(30,10),
	b    bytea,
	j    jsonb,
	ts   timestamp,
	tstz timestamptz,
	d    date,
	t    text,
	big  bigint,
	f    double precision,
	flag boolean,
	u    uuid,
	arr  integer[]
);
INSERT INTO types_demo VALUES
	(1, 12345678901234567890.0123456789, '\x000102fffe', '{"a": 1, "b": [true, null, "x"], "c": {"d": 1.5}}',
	 '2024-01-01 00:00:00', '2024-01-01 00:00:00+00', '2024-01-01', 'plain', 9223372036854775807,
	 3.141592653589793, true, '00000000-0000-4000-8000-000000000001', '{1,2,3}'),
	(2, -0.0000000001, '', '[]', '1999-12-31 23:59:59.999999', '1999-12-31 23:59:59.999999+00', '0001-01-01',
	 E'quote '' backslash \\ tab\t newline\n unicode ✓', -9223372036854775808, -0.0, false,
	 'ffffffff-ffff-4fff-bfff-ffffffffffff', '{}'),
	(3, 'NaN', '\xdeadbeef', '"just a string"', 'infinity', '-infinity', '9999-12-31', '',
	 0, 'Infinity', NULL, NULL, '{NULL,4}'),
	(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

CREATE TABLE events (
	id          bigint PRIMARY KEY,
	ts          timestamptz NOT NULL,
	kind        text NOT NULL,
	customer_id integer REFERENCES customers(id),
	payload     jsonb NOT NULL
);
INSERT INTO events
SELECT i,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute',
       (ARRAY['view', 'click', 'cart', 'buy'])[1 + i % 4],
       CASE WHEN i % 7 = 0 THEN NULL ELSE 1 + i % 5 END,
       jsonb_build_object('seq', i, 'page', '/p/' || (i % 100), 'ok', i % 3 <> 0)
FROM generate_series(1, 10000) AS i;
CREATE INDEX events_ts_idx ON events(ts);
CREATE INDEX events_kind_idx ON events(kind);
COMMIT;
ANALYZE;
EOF
}

pg_try_start() {
	PG_OK=0
	if [ -x "$PG_BIN/initdb" ] && pg_start "$T/pg" "$(free_port)" >"$T/pg.out" 2>&1 &&
	    pg_seed >>"$T/pg.out" 2>&1; then
		PG_OK=1
	fi
}

pg_server_yaml() {
	printf '  %s:\n    type: postgres\n' "$1"
	printf '    dsn: "postgresql://%s@%s:%s/%s"\n' "$PG_USER" "$PG_HOST" "$PG_PORT" "$PG_DB"
	printf '    password: "%s"\n' "$PG_PASSWORD"
	shift
	for _ps_line in "$@"; do
		printf '    %s\n' "$_ps_line"
	done
}
