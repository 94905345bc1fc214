//! The shared store: PostgreSQL, for several nodes over one database.
//!
//! The store orders: a message's sequence number is assigned in the same
//! transaction that stores it, by incrementing its room's `last_seq` row,
//! which also locks that row until commit. Appends to one room therefore
//! serialize (gap-free numbers across every node), appends to different
//! rooms run in parallel, and a retransmission (same room, sender and client
//! id, the unique key) rolls the increment back and answers with the stored
//! message, with no time window. A commit whose answer is lost (the
//! connection drops) is "unknown" to the caller: its retry with the same
//! client id is stored at most once.
//!
//! The schema is versioned: [`MIGRATIONS`] run at start, each once, in
//! order, under an advisory lock so nodes starting together do not race.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::{NoTls, Row};

use crate::model::{
    Appended, MemberRoom, NewMessage, Room, RoomId, RoomKind, Seq, StoredMessage, User, UserId, UserKind,
};
use crate::{Error, Store};

/// Schema versions, applied in order; a version is never edited once
/// released, only followed by a new one.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE users(
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        password_hash TEXT
    );
    CREATE TABLE rooms(
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        owner BIGINT NOT NULL,
        last_seq BIGINT NOT NULL DEFAULT 0,
        direct_key TEXT UNIQUE
    );
    CREATE INDEX rooms_public ON rooms(kind, last_seq DESC);
    CREATE TABLE members(
        room BIGINT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        user_id BIGINT NOT NULL,
        last_read BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY(room, user_id)
    );
    CREATE INDEX members_by_user ON members(user_id);
    CREATE TABLE messages(
        room BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        user_id BIGINT NOT NULL,
        client_id TEXT NOT NULL,
        text TEXT NOT NULL,
        ts BIGINT NOT NULL,
        PRIMARY KEY(room, seq)
    );
    CREATE UNIQUE INDEX messages_idempotency ON messages(room, user_id, client_id);
    CREATE TABLE settings(
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
    ),
    (
        2,
        "CREATE TABLE game_scores(
        user_id BIGINT PRIMARY KEY,
        best BIGINT NOT NULL,
        at BIGINT NOT NULL
    );
    CREATE INDEX game_scores_best ON game_scores(best DESC, at);",
    ),
];

/// An arbitrary constant naming volley's migration lock.
const MIGRATION_LOCK: i64 = 0x766f_6c6c_6579;

/// Connections per node.
const POOL_SIZE: usize = 16;

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Error {
        Error::storage(e)
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Error {
        Error::storage(e)
    }
}

/// A sequence number as PostgreSQL's BIGINT (clamped: no room gets there).
fn pg_seq(s: Seq) -> i64 {
    s.0.min(i64::MAX as u64) as i64
}

fn seq_of(v: i64) -> Seq {
    Seq(v.max(0) as u64)
}

/// The PostgreSQL [`Store`].
pub struct PgStore {
    pool: Pool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("pool", &self.pool.status()).finish()
    }
}

impl PgStore {
    /// Connect to `url` (`postgres://USER@HOST:PORT/DB`) and run the
    /// migrations this database has not seen.
    pub async fn connect(url: &str) -> Result<PgStore, Error> {
        let mut config: tokio_postgres::Config = url.parse()?;
        // A node stopped mid-transaction (SIGSTOP, a long GC pause in a VM)
        // would hold its room's row lock and stall every node's sends to that
        // room; the server aborts such a transaction after 5 s instead.
        let options = format!(
            "{} -c idle_in_transaction_session_timeout=5000",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim());
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(std::time::Duration::from_secs(5)))
            .wait_timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .map_err(Error::storage)?;
        let store = PgStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// The schema version now in the database.
    pub async fn schema_version(&self) -> Result<i32, Error> {
        let client = self.pool.get().await?;
        let row = client
            .query_one("SELECT COALESCE(MAX(version), 0) FROM volley_migrations", &[])
            .await?;
        Ok(row.get(0))
    }

    async fn migrate(&self) -> Result<(), Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS volley_migrations(
                version INT PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await?;
        let row = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM volley_migrations", &[])
            .await?;
        let current: i32 = row.get(0);
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql).await?;
            tx.execute("INSERT INTO volley_migrations(version) VALUES ($1)", &[version])
                .await?;
            tracing::info!(version, "schema migrated");
        }
        tx.commit().await?;
        Ok(())
    }

    /// A value every node shares: the stored one, or `proposed` if there was
    /// none (the first node to ask decides). Used for the token secret, so a
    /// token issued by one node is valid on all of them.
    pub async fn shared_setting(&self, key: &str, proposed: &str) -> Result<String, Error> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO settings(key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &proposed],
            )
            .await?;
        let row = client
            .query_one("SELECT value FROM settings WHERE key = $1", &[&key])
            .await?;
        Ok(row.get(0))
    }
}

fn user_row(row: &Row) -> User {
    User {
        id: UserId(row.get(0)),
        name: row.get(1),
        kind: UserKind::parse(row.get(2)),
    }
}

const ROOM_COLUMNS: &str =
    "r.id, r.name, r.kind, r.owner, r.last_seq, (SELECT COUNT(*) FROM members m2 WHERE m2.room = r.id)";

fn room_row(row: &Row) -> Room {
    Room {
        id: RoomId(row.get(0)),
        name: row.get(1),
        kind: RoomKind::parse(row.get(2)),
        owner: UserId(row.get(3)),
        last_seq: seq_of(row.get(4)),
        members: row.get::<_, i64>(5).max(0) as u64,
    }
}

const MESSAGE_COLUMNS: &str = "m.room, m.seq, m.client_id, m.user_id, u.name, m.text, m.ts";

fn message_row(row: &Row) -> StoredMessage {
    StoredMessage {
        room: RoomId(row.get(0)),
        seq: seq_of(row.get(1)),
        client_id: row.get(2),
        user: UserId(row.get(3)),
        user_name: row.get(4),
        text: row.get(5),
        ts: row.get(6),
    }
}

async fn room_by_id(client: &impl GenericClient, id: RoomId) -> Result<Option<Room>, Error> {
    let sql = format!("SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = $1");
    let stmt = client.prepare_cached(&sql).await?;
    Ok(client.query_opt(&stmt, &[&id.0]).await?.as_ref().map(room_row))
}

async fn insert_user(
    client: &impl GenericClient,
    name: &str,
    kind: UserKind,
    hash: Option<&str>,
) -> Result<User, Error> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO users(name, kind, password_hash) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&name, &kind.as_str(), &hash])
        .await?
        .ok_or(Error::Taken("user name"))?;
    Ok(User {
        id: UserId(row.get(0)),
        name: name.to_owned(),
        kind,
    })
}

async fn insert_room(
    client: &impl GenericClient,
    name: &str,
    kind: RoomKind,
    owner: UserId,
    direct_key: Option<&str>,
) -> Result<RoomId, Error> {
    let stmt = client
        .prepare_cached("INSERT INTO rooms(name, kind, owner, direct_key) VALUES ($1, $2, $3, $4) RETURNING id")
        .await?;
    let row = client
        .query_one(&stmt, &[&name, &kind.as_str(), &owner.0, &direct_key])
        .await?;
    let id = RoomId(row.get(0));
    add_member(client, id, owner).await?;
    Ok(id)
}

async fn add_member(client: &impl GenericClient, room: RoomId, user: UserId) -> Result<bool, Error> {
    let stmt = client
        .prepare_cached("INSERT INTO members(room, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .await?;
    Ok(client.execute(&stmt, &[&room.0, &user.0]).await? == 1)
}

#[async_trait]
impl Store for PgStore {
    async fn create_user(&self, name: &str, kind: UserKind, password_hash: Option<String>) -> Result<User, Error> {
        let client = self.pool.get().await?;
        insert_user(&client, name, kind, password_hash.as_deref()).await
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<(User, Option<String>)>, Error> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT id, name, kind, password_hash FROM users WHERE name = $1")
            .await?;
        let row = client.query_opt(&stmt, &[&name]).await?;
        Ok(row.map(|row| (user_row(&row), row.get(3))))
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, Error> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT id, name, kind FROM users WHERE id = $1")
            .await?;
        Ok(client.query_opt(&stmt, &[&id.0]).await?.as_ref().map(user_row))
    }

    async fn external_user(&self, subject: &str) -> Result<User, Error> {
        let client = self.pool.get().await?;
        // The insert either creates the user or finds the name taken; the
        // select then tells an external user from a local one of that name.
        let _ = insert_user(&client, subject, UserKind::External, None).await;
        let stmt = client
            .prepare_cached("SELECT id, name, kind FROM users WHERE name = $1")
            .await?;
        match client.query_opt(&stmt, &[&subject]).await?.as_ref().map(user_row) {
            Some(user) if user.kind == UserKind::External => Ok(user),
            Some(_) => Err(Error::Taken("user name")),
            None => Err(Error::NotFound("user")),
        }
    }

    async fn create_room(&self, name: &str, kind: RoomKind, owner: UserId) -> Result<Room, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let id = insert_room(&tx, name, kind, owner, None).await?;
        let room = room_by_id(&tx, id).await?.ok_or(Error::NotFound("room"))?;
        tx.commit().await?;
        Ok(room)
    }

    async fn room(&self, id: RoomId) -> Result<Option<Room>, Error> {
        let client = self.pool.get().await?;
        room_by_id(&client, id).await
    }

    async fn search_public(&self, query: &str, limit: u32) -> Result<Vec<Room>, Error> {
        let pattern = format!(
            "%{}%",
            query.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
        );
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.kind = 'public' AND r.name LIKE $1 \
             ORDER BY r.last_seq DESC, r.id LIMIT $2"
        );
        let stmt = client.prepare_cached(&sql).await?;
        let rows = client.query(&stmt, &[&pattern, &i64::from(limit)]).await?;
        Ok(rows.iter().map(room_row).collect())
    }

    async fn rooms_of(&self, user: UserId) -> Result<Vec<MemberRoom>, Error> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {ROOM_COLUMNS}, m.last_read FROM members m JOIN rooms r ON r.id = m.room \
             WHERE m.user_id = $1 ORDER BY r.id"
        );
        let stmt = client.prepare_cached(&sql).await?;
        let rows = client.query(&stmt, &[&user.0]).await?;
        Ok(rows
            .iter()
            .map(|row| MemberRoom {
                room: room_row(row),
                last_read: seq_of(row.get(6)),
            })
            .collect())
    }

    async fn add_member(&self, room: RoomId, user: UserId) -> Result<bool, Error> {
        let client = self.pool.get().await?;
        if room_by_id(&client, room).await?.is_none() {
            return Err(Error::NotFound("room"));
        }
        add_member(&client, room, user).await
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<bool, Error> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("DELETE FROM members WHERE room = $1 AND user_id = $2")
            .await?;
        Ok(client.execute(&stmt, &[&room.0, &user.0]).await? == 1)
    }

    async fn delete_room(&self, room: RoomId) -> Result<Option<Vec<UserId>>, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Lock the row first: appends to the room wait, then find it gone.
        let lock = tx
            .prepare_cached("SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE")
            .await?;
        if tx.query_opt(&lock, &[&room.0]).await?.is_none() {
            return Ok(None);
        }
        let members = tx.prepare_cached("SELECT user_id FROM members WHERE room = $1").await?;
        let members = tx
            .query(&members, &[&room.0])
            .await?
            .iter()
            .map(|row| UserId(row.get(0)))
            .collect();
        let messages = tx.prepare_cached("DELETE FROM messages WHERE room = $1").await?;
        tx.execute(&messages, &[&room.0]).await?;
        // Memberships go with the room (ON DELETE CASCADE); bigserial ids never repeat.
        let rooms = tx.prepare_cached("DELETE FROM rooms WHERE id = $1").await?;
        tx.execute(&rooms, &[&room.0]).await?;
        tx.commit().await?;
        Ok(Some(members))
    }

    async fn is_member(&self, room: RoomId, user: UserId) -> Result<bool, Error> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT 1 FROM members WHERE room = $1 AND user_id = $2")
            .await?;
        Ok(client.query_opt(&stmt, &[&room.0, &user.0]).await?.is_some())
    }

    async fn members(&self, room: RoomId) -> Result<Vec<User>, Error> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT u.id, u.name, u.kind FROM members m JOIN users u ON u.id = m.user_id \
                 WHERE m.room = $1 ORDER BY u.name",
            )
            .await?;
        Ok(client.query(&stmt, &[&room.0]).await?.iter().map(user_row).collect())
    }

    async fn direct_room(&self, a: &User, b: &User) -> Result<Room, Error> {
        let (lo, hi) = if a.id <= b.id { (a, b) } else { (b, a) };
        let key = format!("{}:{}", lo.id, hi.id);
        let name = format!("{} & {}", lo.name, hi.name);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Two nodes creating the same pair's room at once: the unique
        // direct_key lets one insert win; both then read the winner's id.
        let stmt = tx
            .prepare_cached(
                "INSERT INTO rooms(name, kind, owner, direct_key) VALUES ($1, 'direct', $2, $3) \
                 ON CONFLICT (direct_key) DO NOTHING RETURNING id",
            )
            .await?;
        if let Some(row) = tx.query_opt(&stmt, &[&name, &a.id.0, &key]).await? {
            let id = RoomId(row.get(0));
            add_member(&tx, id, a.id).await?;
            add_member(&tx, id, b.id).await?;
        }
        let row = tx
            .query_one("SELECT id FROM rooms WHERE direct_key = $1", &[&key])
            .await?;
        let room = room_by_id(&tx, RoomId(row.get(0)))
            .await?
            .ok_or(Error::NotFound("room"))?;
        tx.commit().await?;
        Ok(room)
    }

    async fn append(&self, m: NewMessage) -> Result<Appended, Error> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Take the room's next number first: the row lock this takes
        // serializes appends to the room, so two copies of one message
        // cannot both pass the idempotency check below.
        let next = tx
            .prepare_cached("UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq")
            .await?;
        let seq = match tx.query_opt(&next, &[&m.room.0]).await? {
            Some(row) => seq_of(row.get(0)),
            None => return Err(Error::NotFound("room")),
        };
        let existing = tx
            .prepare_cached("SELECT seq, text, ts FROM messages WHERE room = $1 AND user_id = $2 AND client_id = $3")
            .await?;
        if let Some(row) = tx.query_opt(&existing, &[&m.room.0, &m.user.0, &m.client_id]).await? {
            // Dropping the transaction rolls the increment back: no gap.
            tx.rollback().await?;
            return Ok(Appended::Duplicate(m.duplicate_of(
                seq_of(row.get(0)),
                row.get(1),
                row.get(2),
            )));
        }
        let insert = tx
            .prepare_cached(
                "INSERT INTO messages(room, seq, user_id, client_id, text, ts) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .await?;
        tx.execute(
            &insert,
            &[&m.room.0, &pg_seq(seq), &m.user.0, &m.client_id, &m.text, &m.ts],
        )
        .await?;
        tx.commit().await?;
        Ok(Appended::New(m.stored(seq)))
    }

    async fn history(&self, room: RoomId, before: Option<Seq>, limit: u32) -> Result<Vec<StoredMessage>, Error> {
        let before = pg_seq(before.unwrap_or(Seq(u64::MAX)));
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.user_id \
             WHERE m.room = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"
        );
        let stmt = client.prepare_cached(&sql).await?;
        let rows = client.query(&stmt, &[&room.0, &before, &i64::from(limit)]).await?;
        let mut page: Vec<StoredMessage> = rows.iter().map(message_row).collect();
        page.reverse();
        Ok(page)
    }

    async fn since(&self, room: RoomId, after: Seq, limit: u32) -> Result<Vec<StoredMessage>, Error> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.user_id \
             WHERE m.room = $1 AND m.seq > $2 ORDER BY m.seq ASC LIMIT $3"
        );
        let stmt = client.prepare_cached(&sql).await?;
        let rows = client
            .query(&stmt, &[&room.0, &pg_seq(after), &i64::from(limit)])
            .await?;
        Ok(rows.iter().map(message_row).collect())
    }

    async fn set_read(&self, room: RoomId, user: UserId, read: Seq) -> Result<Seq, Error> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE members SET last_read = GREATEST(last_read, LEAST($3, (SELECT last_seq FROM rooms WHERE id = $1))) \
                 WHERE room = $1 AND user_id = $2 RETURNING last_read",
            )
            .await?;
        match client.query_opt(&stmt, &[&room.0, &user.0, &pg_seq(read)]).await? {
            Some(row) => Ok(seq_of(row.get(0))),
            None => Err(Error::NotFound("membership")),
        }
    }

    async fn record_scores(&self, scores: &[(UserId, u32)]) -> Result<(), Error> {
        if scores.is_empty() {
            return Ok(());
        }
        let (users, bests): (Vec<i64>, Vec<i64>) = scores.iter().map(|(u, b)| (u.0, i64::from(*b))).unzip();
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO game_scores(user_id, best, at) \
                 SELECT u, MAX(b), $3 FROM UNNEST($1::BIGINT[], $2::BIGINT[]) AS t(u, b) GROUP BY u ORDER BY u \
                 ON CONFLICT (user_id) DO UPDATE SET best = excluded.best, at = excluded.at \
                 WHERE excluded.best > game_scores.best",
            )
            .await?;
        client
            .execute(&stmt, &[&users, &bests, &crate::model::now_millis()])
            .await?;
        Ok(())
    }

    async fn top_scores(&self, limit: u32) -> Result<Vec<(User, u32)>, Error> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT u.id, u.name, u.kind, s.best FROM game_scores s JOIN users u ON u.id = s.user_id \
                 ORDER BY s.best DESC, s.at LIMIT $1",
            )
            .await?;
        let rows = client.query(&stmt, &[&i64::from(limit)]).await?;
        Ok(rows
            .iter()
            .map(|r| (user_row(r), u32::try_from(r.get::<_, i64>(3)).unwrap_or(u32::MAX)))
            .collect())
    }

    async fn ping(&self) -> Result<(), Error> {
        let client = self.pool.get().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok(())
    }
}
