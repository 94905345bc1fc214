//! The embedded store: one SQLite file in WAL mode.
//!
//! All writes go through one writer thread that commits in groups: it takes
//! every job waiting in its queue, runs each inside its own savepoint, commits
//! once, and only then answers the callers. One fsync covers the whole group,
//! so durability (synchronous=FULL by default) costs one disk flush per batch
//! rather than per message. Sequence numbers are assigned by that thread,
//! which is why they are gap-free. Reads run on a small pool of read-only
//! connections beside it (WAL lets them read while the writer writes).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::model::{
    Appended, MemberRoom, NewMessage, Room, RoomId, RoomKind, Seq, StoredMessage, User, UserId, UserKind,
};
use crate::{Error, Store};

/// How hard SQLite works to survive a power cut (PRAGMA synchronous).
/// Written `full` or `normal` in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Flush the WAL on every commit: an acknowledged message survives a
    /// power loss. The default; group commit keeps it cheap.
    #[default]
    Full,
    /// Flush at checkpoints only: survives a crash of the process, may lose
    /// the last commits on power loss.
    Normal,
}

impl std::str::FromStr for Synchronous {
    type Err = String;

    fn from_str(s: &str) -> Result<Synchronous, String> {
        match s {
            "full" => Ok(Synchronous::Full),
            "normal" => Ok(Synchronous::Normal),
            other => Err(format!("{other:?} is not one of full, normal")),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::storage(e)
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    password_hash TEXT
);
CREATE TABLE IF NOT EXISTS rooms(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    owner INTEGER NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    direct_key TEXT UNIQUE
);
CREATE TABLE IF NOT EXISTS members(
    room INTEGER NOT NULL,
    user INTEGER NOT NULL,
    last_read INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY(room, user)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_user ON members(user);
CREATE TABLE IF NOT EXISTS messages(
    room INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    user INTEGER NOT NULL,
    client_id TEXT NOT NULL,
    text TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY(room, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_idempotency ON messages(room, user, client_id);
CREATE TABLE IF NOT EXISTS game_scores(
    user INTEGER PRIMARY KEY,
    best INTEGER NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS game_scores_best ON game_scores(best DESC, at);
";

/// Most jobs in one commit group.
const MAX_GROUP: usize = 512;
/// Jobs waiting for the writer before callers wait to enqueue.
const WRITER_QUEUE: usize = 4096;
/// Read connections (and blocking threads reading at once).
const READERS: usize = 4;

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A job gets the writer's connection, or why no transaction could be begun.
type Job = Box<dyn FnOnce(Result<&Connection, String>) -> (bool, Completion) + Send>;

/// The SQLite [`Store`].
pub struct SqliteStore {
    writer: mpsc::Sender<Job>,
    path: PathBuf,
    readers: Arc<Mutex<Vec<Connection>>>,
    reading: Semaphore,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

impl SqliteStore {
    /// Open (or create) `dir/volley.db`, migrate it, and start the writer.
    pub fn open(dir: &Path, sync: Synchronous) -> Result<SqliteStore, Error> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("volley.db");
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            match sync {
                Synchronous::Full => "FULL",
                Synchronous::Normal => "NORMAL",
            },
        )?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        std::thread::Builder::new()
            .name("volley-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))?;
        Ok(SqliteStore {
            writer: tx,
            path,
            readers: Arc::new(Mutex::new(Vec::new())),
            reading: Semaphore::new(READERS),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the writer thread inside the next commit group; resolves
    /// after that group committed.
    async fn write<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, Error>>();
        let job: Job = Box::new(move |conn| {
            let result = conn.map_err(Error::Commit).and_then(f);
            let ok = result.is_ok();
            let done: Completion = Box::new(move |commit| {
                let _ = tx.send(match commit {
                    Ok(()) => result,
                    Err(e) => Err(Error::Commit(e)),
                });
            });
            (ok, done)
        });
        self.writer.send(job).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Run `f` on a read connection on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    {
        let _permit = self.reading.acquire().await.map_err(|_| Error::Closed)?;
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match pool.lock().map_err(|_| Error::Closed)?.pop() {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    c.busy_timeout(std::time::Duration::from_secs(5))?;
                    c
                }
            };
            let result = f(&conn);
            if let Ok(mut pool) = pool.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|_| Error::Closed)?
    }
}

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut group: Vec<Job> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut done: Vec<Completion> = Vec::with_capacity(group.len());
        if let Err(e) = run(&conn, "BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "sqlite could not begin a transaction");
            for job in group.drain(..) {
                let (_, complete) = job(Err(e.to_string()));
                complete(Ok(()));
            }
            continue;
        }
        for job in group.drain(..) {
            let _ = run(&conn, "SAVEPOINT job");
            let (ok, complete) = job(Ok(&conn));
            if !ok {
                let _ = run(&conn, "ROLLBACK TO job");
            }
            let _ = run(&conn, "RELEASE job");
            done.push(complete);
        }
        let commit = run(&conn, "COMMIT").map_err(|e| {
            tracing::error!(error = %e, "sqlite commit failed");
            let _ = conn.execute_batch("ROLLBACK");
            e.to_string()
        });
        for complete in done {
            complete(commit.clone());
        }
    }
}

/// Run a statement without rows from the statement cache (parsing
/// `SAVEPOINT` for every message showed up in profiles).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn user_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: UserKind::parse(&row.get::<_, String>(2)?),
    })
}

const ROOM_COLUMNS: &str =
    "r.id, r.name, r.kind, r.owner, r.last_seq, (SELECT COUNT(*) FROM members m2 WHERE m2.room = r.id)";

fn room_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Room> {
    Ok(Room {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: RoomKind::parse(&row.get::<_, String>(2)?),
        owner: row.get(3)?,
        last_seq: row.get(4)?,
        members: row.get::<_, i64>(5)? as u64,
    })
}

const MESSAGE_COLUMNS: &str = "m.room, m.seq, m.client_id, m.user, u.name, m.text, m.ts";

fn message_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        room: row.get(0)?,
        seq: row.get(1)?,
        client_id: row.get(2)?,
        user: row.get(3)?,
        user_name: row.get(4)?,
        text: row.get(5)?,
        ts: row.get(6)?,
    })
}

fn room_by_id(conn: &Connection, id: RoomId) -> Result<Option<Room>, Error> {
    let sql = format!("SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = ?1 AND r.kind <> 'deleted'");
    Ok(conn.prepare_cached(&sql)?.query_row([id], room_row).optional()?)
}

fn insert_user(conn: &Connection, name: &str, kind: UserKind, hash: Option<&str>) -> Result<User, Error> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO users(name, kind, password_hash) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
        )?
        .execute(params![name, kind.as_str(), hash])?;
    if inserted == 0 {
        return Err(Error::Taken("user name"));
    }
    Ok(User {
        id: UserId(conn.last_insert_rowid()),
        name: name.to_owned(),
        kind,
    })
}

fn insert_room(
    conn: &Connection,
    name: &str,
    kind: RoomKind,
    owner: UserId,
    direct_key: Option<&str>,
) -> Result<RoomId, Error> {
    conn.prepare_cached("INSERT INTO rooms(name, kind, owner, direct_key) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![name, kind.as_str(), owner, direct_key])?;
    let id = RoomId(conn.last_insert_rowid());
    conn.prepare_cached("INSERT OR IGNORE INTO members(room, user) VALUES (?1, ?2)")?
        .execute(params![id, owner])?;
    Ok(id)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, name: &str, kind: UserKind, password_hash: Option<String>) -> Result<User, Error> {
        let name = name.to_owned();
        self.write(move |c| insert_user(c, &name, kind, password_hash.as_deref()))
            .await
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<(User, Option<String>)>, Error> {
        let name = name.to_owned();
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT id, name, kind, password_hash FROM users WHERE name = ?1")?
                    .query_row([name], |row| Ok((user_row(row)?, row.get::<_, Option<String>>(3)?)))
                    .optional()?,
            )
        })
        .await
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, Error> {
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT id, name, kind FROM users WHERE id = ?1")?
                .query_row([id], user_row)
                .optional()?)
        })
        .await
    }

    async fn external_user(&self, subject: &str) -> Result<User, Error> {
        let name = subject.to_owned();
        self.write(move |c| {
            let found = c
                .prepare_cached("SELECT id, name, kind FROM users WHERE name = ?1")?
                .query_row([&name], user_row)
                .optional()?;
            match found {
                Some(user) if user.kind == UserKind::External => Ok(user),
                Some(_) => Err(Error::Taken("user name")),
                None => insert_user(c, &name, UserKind::External, None),
            }
        })
        .await
    }

    async fn create_room(&self, name: &str, kind: RoomKind, owner: UserId) -> Result<Room, Error> {
        let name = name.to_owned();
        self.write(move |c| {
            let id = insert_room(c, &name, kind, owner, None)?;
            room_by_id(c, id)?.ok_or(Error::NotFound("room"))
        })
        .await
    }

    async fn room(&self, id: RoomId) -> Result<Option<Room>, Error> {
        self.read(move |c| room_by_id(c, id)).await
    }

    async fn search_public(&self, query: &str, limit: u32) -> Result<Vec<Room>, Error> {
        let pattern = format!(
            "%{}%",
            query.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
        );
        self.read(move |c| {
            let sql = format!(
                "SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.kind = 'public' AND r.name LIKE ?1 ESCAPE '\\' \
                 ORDER BY r.last_seq DESC, r.id LIMIT ?2"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![pattern, limit], room_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn rooms_of(&self, user: UserId) -> Result<Vec<MemberRoom>, Error> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {ROOM_COLUMNS}, m.last_read FROM members m JOIN rooms r ON r.id = m.room \
                 WHERE m.user = ?1 ORDER BY r.id"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map([user], |row| {
                Ok(MemberRoom {
                    room: room_row(row)?,
                    last_read: row.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn add_member(&self, room: RoomId, user: UserId) -> Result<bool, Error> {
        self.write(move |c| {
            if room_by_id(c, room)?.is_none() {
                return Err(Error::NotFound("room"));
            }
            Ok(
                c.prepare_cached("INSERT OR IGNORE INTO members(room, user) VALUES (?1, ?2)")?
                    .execute(params![room, user])?
                    == 1,
            )
        })
        .await
    }

    async fn remove_member(&self, room: RoomId, user: UserId) -> Result<bool, Error> {
        self.write(move |c| {
            Ok(c.prepare_cached("DELETE FROM members WHERE room = ?1 AND user = ?2")?
                .execute(params![room, user])?
                == 1)
        })
        .await
    }

    async fn delete_room(&self, room: RoomId) -> Result<Option<Vec<UserId>>, Error> {
        self.write(move |c| {
            if room_by_id(c, room)?.is_none() {
                return Ok(None);
            }
            let members = c
                .prepare_cached("SELECT user FROM members WHERE room = ?1")?
                .query_map([room], |r| r.get::<_, UserId>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            c.prepare_cached("DELETE FROM messages WHERE room = ?1")?
                .execute([room])?;
            c.prepare_cached("DELETE FROM members WHERE room = ?1")?
                .execute([room])?;
            // A tombstone: SQLite gives a new row the highest id plus one,
            // so deleting the row would hand this id to the next room.
            c.prepare_cached("UPDATE rooms SET kind = 'deleted', name = '', direct_key = NULL WHERE id = ?1")?
                .execute([room])?;
            Ok(Some(members))
        })
        .await
    }

    async fn is_member(&self, room: RoomId, user: UserId) -> Result<bool, Error> {
        self.read(move |c| {
            Ok(c.prepare_cached("SELECT 1 FROM members WHERE room = ?1 AND user = ?2")?
                .query_row(params![room, user], |_| Ok(()))
                .optional()?
                .is_some())
        })
        .await
    }

    async fn members(&self, room: RoomId) -> Result<Vec<User>, Error> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT u.id, u.name, u.kind FROM members m JOIN users u ON u.id = m.user WHERE m.room = ?1 ORDER BY u.name",
            )?;
            let rows = stmt.query_map([room], user_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn direct_room(&self, a: &User, b: &User) -> Result<Room, Error> {
        let (lo, hi) = if a.id <= b.id { (a, b) } else { (b, a) };
        let key = format!("{}:{}", lo.id, hi.id);
        let name = format!("{} & {}", lo.name, hi.name);
        let (a_id, b_id) = (a.id, b.id);
        self.write(move |c| {
            let existing: Option<RoomId> = c
                .prepare_cached("SELECT id FROM rooms WHERE direct_key = ?1")?
                .query_row([&key], |r| r.get(0))
                .optional()?;
            let id = match existing {
                Some(id) => id,
                None => {
                    let id = insert_room(c, &name, RoomKind::Direct, a_id, Some(&key))?;
                    c.prepare_cached("INSERT OR IGNORE INTO members(room, user) VALUES (?1, ?2)")?
                        .execute(params![id, b_id])?;
                    id
                }
            };
            room_by_id(c, id)?.ok_or(Error::NotFound("room"))
        })
        .await
    }

    async fn append(&self, m: NewMessage) -> Result<Appended, Error> {
        self.write(move |c| {
            let existing = c
                .prepare_cached("SELECT seq, text, ts FROM messages WHERE room = ?1 AND user = ?2 AND client_id = ?3")?
                .query_row(params![m.room, m.user, m.client_id], |r| {
                    Ok((r.get::<_, Seq>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                })
                .optional()?;
            if let Some((seq, text, ts)) = existing {
                return Ok(Appended::Duplicate(m.duplicate_of(seq, text, ts)));
            }
            let seq: Seq = c
                .prepare_cached(
                    "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ?1 AND kind <> 'deleted' RETURNING last_seq",
                )?
                .query_row([m.room], |r| r.get(0))
                .optional()?
                .ok_or(Error::NotFound("room"))?;
            c.prepare_cached(
                "INSERT INTO messages(room, seq, user, client_id, text, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![m.room, seq, m.user, m.client_id, m.text, m.ts])?;
            Ok(Appended::New(m.stored(seq)))
        })
        .await
    }

    async fn history(&self, room: RoomId, before: Option<Seq>, limit: u32) -> Result<Vec<StoredMessage>, Error> {
        let before = before.unwrap_or(Seq(u64::MAX));
        self.read(move |c| {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.user \
                 WHERE m.room = ?1 AND m.seq < ?2 ORDER BY m.seq DESC LIMIT ?3"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![room, before, limit], message_row)?;
            let mut out = rows.collect::<Result<Vec<_>, _>>()?;
            out.reverse();
            Ok(out)
        })
        .await
    }

    async fn since(&self, room: RoomId, after: Seq, limit: u32) -> Result<Vec<StoredMessage>, Error> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.user \
                 WHERE m.room = ?1 AND m.seq > ?2 ORDER BY m.seq ASC LIMIT ?3"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![room, after, limit], message_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn set_read(&self, room: RoomId, user: UserId, seq: Seq) -> Result<Seq, Error> {
        self.write(move |c| {
            let value: Option<Seq> = c
                .prepare_cached(
                    "UPDATE members SET last_read = MAX(last_read, MIN(?3, (SELECT last_seq FROM rooms WHERE id = ?1))) \
                     WHERE room = ?1 AND user = ?2 RETURNING last_read",
                )?
                .query_row(params![room, user, seq], |r| r.get(0))
                .optional()?;
            value.ok_or(Error::NotFound("membership"))
        })
        .await
    }

    async fn record_scores(&self, scores: &[(UserId, u32)]) -> Result<(), Error> {
        if scores.is_empty() {
            return Ok(());
        }
        let scores = scores.to_vec();
        let now = crate::model::now_millis();
        self.write(move |c| {
            let mut stmt = c.prepare_cached(
                "INSERT INTO game_scores(user, best, at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(user) DO UPDATE SET best = excluded.best, at = excluded.at \
                 WHERE excluded.best > game_scores.best",
            )?;
            for (user, best) in scores {
                stmt.execute(params![user, best, now])?;
            }
            Ok(())
        })
        .await
    }

    async fn top_scores(&self, limit: u32) -> Result<Vec<(User, u32)>, Error> {
        self.read(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT u.id, u.name, u.kind, s.best FROM game_scores s JOIN users u ON u.id = s.user \
                     ORDER BY s.best DESC, s.at LIMIT ?1",
                )?
                .query_map([limit], |r| Ok((user_row(r)?, r.get(3)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn ping(&self) -> Result<(), Error> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?)).await
    }
}
