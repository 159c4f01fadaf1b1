//! A dedicated SQLite connection driven through SQLite's own C API, for bulk writes (sales imports)
//! and bulk reads (the engine's pages of sales facts).
//!
//! sqlx runs each SQLite statement on a worker thread and sends it every bound value and every result
//! row over a channel, and the `Any` driver converts each value once more on the way. For an import's
//! hundreds of thousands of small inserts and lookups that machinery, not SQLite, was the critical
//! path. Here a batch locks the connection's handle away from sqlx's worker (`lock_handle`, sqlx's
//! documented way to call SQLite directly), prepares each statement once, and steps it for every row
//! with typed binds.
//!
//! A batch's transaction runs synchronously, without yielding to the runtime: an import cancelled
//! between batches can never leave a transaction half-done.

use crate::{Result, StoreError};
use libsqlite3_sys as ffi;
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::ffi::{CString, c_int};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::str::FromStr;

/// A connection of its own to the store's SQLite file, for one bulk writer at a time.
pub(crate) struct NativeSqlite {
    conn: SqliteConnection,
}

impl NativeSqlite {
    /// Opens `url` with the same settings as the store's pool connections.
    pub(crate) async fn open(url: &str) -> Result<NativeSqlite> {
        let mut conn = SqliteConnectOptions::from_str(url)?.connect().await?;
        sqlx::Executor::execute(&mut conn, crate::db::SQLITE_PRAGMAS).await?;
        Ok(NativeSqlite { conn })
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE` … `COMMIT`), rolled back if `f` fails.
    pub(crate) async fn write<T>(&mut self, f: impl FnOnce(&Db<'_>) -> Result<T>) -> Result<T> {
        self.transaction("BEGIN IMMEDIATE", f).await
    }

    /// Runs `f` in one read transaction (`BEGIN` … `COMMIT`): its statements see one snapshot.
    pub(crate) async fn read<T>(&mut self, f: impl FnOnce(&Db<'_>) -> Result<T>) -> Result<T> {
        self.transaction("BEGIN", f).await
    }

    async fn transaction<T>(&mut self, begin: &str, f: impl FnOnce(&Db<'_>) -> Result<T>) -> Result<T> {
        let mut locked = self.conn.lock_handle().await?;
        let db = Db { raw: locked.as_raw_handle(), _locked: PhantomData };
        // A panic in an earlier batch may have left its transaction open: it must not commit now.
        // SAFETY: the handle is locked for us, so no other thread uses it.
        if unsafe { ffi::sqlite3_get_autocommit(db.raw.as_ptr()) } == 0 {
            db.exec("ROLLBACK")?;
        }
        db.exec(begin)?;
        match f(&db).and_then(|v| db.exec("COMMIT").map(|_| v)) {
            Ok(v) => Ok(v),
            Err(e) => {
                let _ = db.exec("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// The locked handle of a [`NativeSqlite`] connection, for the length of one transaction.
pub(crate) struct Db<'l> {
    raw: NonNull<ffi::sqlite3>,
    _locked: PhantomData<&'l mut ()>,
}

impl Db<'_> {
    fn error(&self, code: c_int) -> StoreError {
        // SAFETY: the handle is open and locked for us; errmsg returns a NUL-terminated string owned
        // by SQLite that stays valid until the next call on the handle, and is copied at once.
        let message = unsafe {
            let msg = ffi::sqlite3_errmsg(self.raw.as_ptr());
            if msg.is_null() { String::new() } else { std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned() }
        };
        StoreError::Sqlite { code, message }
    }

    /// Runs SQL that takes no parameters and returns no rows.
    pub(crate) fn exec(&self, sql: &str) -> Result<()> {
        let sql = CString::new(sql).map_err(|_| StoreError::Invalid("SQL with a NUL byte".into()))?;
        // SAFETY: a valid handle and a NUL-terminated statement; no callback, no error string wanted.
        let rc = unsafe {
            ffi::sqlite3_exec(self.raw.as_ptr(), sql.as_ptr(), None, std::ptr::null_mut(), std::ptr::null_mut())
        };
        if rc == ffi::SQLITE_OK { Ok(()) } else { Err(self.error(rc)) }
    }

    /// Prepares one statement, to be stepped as often as needed. Parameters are bound by position, so
    /// they must be numbered `$1`, `$2`, … in the order they first appear (the same text then runs on
    /// PostgreSQL); SQLite numbers `$n` by appearance, not by `n`, and this refuses SQL where the two differ.
    pub(crate) fn prepare(&self, sql: &str) -> Result<Stmt<'_>> {
        let mut raw = std::ptr::null_mut();
        let len = c_int::try_from(sql.len()).map_err(|_| StoreError::Invalid("SQL too long".into()))?;
        // SAFETY: `sql` is valid for `len` bytes; SQLite writes the new statement into `raw`.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.raw.as_ptr(),
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut raw,
                std::ptr::null_mut(),
            )
        };
        let stmt = match NonNull::new(raw) {
            Some(raw) if rc == ffi::SQLITE_OK => Stmt { raw, db: self },
            _ => return Err(self.error(rc)),
        };
        // SAFETY: a live statement; parameter names are NUL-terminated strings owned by it.
        let count = unsafe { ffi::sqlite3_bind_parameter_count(stmt.raw.as_ptr()) };
        for i in 1..=count {
            let name = unsafe { ffi::sqlite3_bind_parameter_name(stmt.raw.as_ptr(), i) };
            let name = if name.is_null() { None } else { unsafe { std::ffi::CStr::from_ptr(name) }.to_str().ok() };
            if name.and_then(|n| n.strip_prefix('$')) != Some(i.to_string().as_str()) {
                return Err(StoreError::Invalid(format!("parameter {i} is not written ${i} in: {sql}")));
            }
        }
        Ok(stmt)
    }
}

/// A value bound to a statement parameter.
#[derive(Clone, Copy)]
pub(crate) enum Param<'a> {
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
    Null,
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Param::Null, Param::Int)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Param::Null, Param::Text)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Blob(v)
    }
}

/// The parameters of one execution, in order: `params![a, b, c]`.
macro_rules! params {
    ($($v:expr),* $(,)?) => {
        &[$($crate::sqlite_native::Param::from($v)),*]
    };
}
pub(crate) use params;

/// A prepared statement, finalized on drop.
pub(crate) struct Stmt<'db> {
    raw: NonNull<ffi::sqlite3_stmt>,
    db: &'db Db<'db>,
}

impl Stmt<'_> {
    fn bind(&mut self, params: &[Param<'_>]) -> Result<()> {
        let s = self.raw.as_ptr();
        for (i, p) in params.iter().enumerate() {
            let i = i as c_int + 1;
            // SAFETY: `s` is a live statement. Text and blobs are bound without a copy
            // (SQLITE_STATIC): `run` clears the bindings before it returns, so SQLite never reads
            // them after the borrowed values are gone.
            let rc = unsafe {
                match *p {
                    Param::Int(v) => ffi::sqlite3_bind_int64(s, i, v),
                    Param::Text(v) => {
                        ffi::sqlite3_bind_text(s, i, v.as_ptr().cast(), len(v.len())?, ffi::SQLITE_STATIC())
                    }
                    Param::Blob(v) => {
                        ffi::sqlite3_bind_blob(s, i, v.as_ptr().cast(), len(v.len())?, ffi::SQLITE_STATIC())
                    }
                    Param::Null => ffi::sqlite3_bind_null(s, i),
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(self.db.error(rc));
            }
        }
        Ok(())
    }

    /// Executes the statement with `params`, handing each result row to `row`.
    pub(crate) fn run(&mut self, params: &[Param<'_>], mut row: impl FnMut(&Row<'_>) -> Result<()>) -> Result<()> {
        let result = self.bind(params).and_then(|_| {
            loop {
                // SAFETY: a live statement with all parameters bound.
                match unsafe { ffi::sqlite3_step(self.raw.as_ptr()) } {
                    ffi::SQLITE_ROW => row(&Row { raw: self.raw, _stmt: PhantomData })?,
                    ffi::SQLITE_DONE => break Ok(()),
                    rc => break Err(self.db.error(rc)),
                }
            }
        });
        // SAFETY: resetting and unbinding a live statement. Reset repeats the last step's error
        // code, which was reported above already.
        unsafe {
            ffi::sqlite3_reset(self.raw.as_ptr());
            ffi::sqlite3_clear_bindings(self.raw.as_ptr());
        }
        result
    }

    /// Executes a statement that returns no rows.
    pub(crate) fn execute(&mut self, params: &[Param<'_>]) -> Result<()> {
        self.run(params, |_| Ok(()))
    }
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live and not used after this.
        unsafe {
            ffi::sqlite3_finalize(self.raw.as_ptr());
        }
    }
}

fn len(n: usize) -> Result<c_int> {
    c_int::try_from(n).map_err(|_| StoreError::Invalid("value too long for SQLite".into()))
}

/// The current result row of a statement; valid only inside the callback it was passed to.
pub(crate) struct Row<'s> {
    raw: NonNull<ffi::sqlite3_stmt>,
    _stmt: PhantomData<&'s ()>,
}

impl Row<'_> {
    fn is_null(&self, i: c_int) -> bool {
        // SAFETY: the statement has a current row; an out-of-range column reads as NULL.
        unsafe { ffi::sqlite3_column_type(self.raw.as_ptr(), i) == ffi::SQLITE_NULL }
    }

    pub(crate) fn int(&self, i: c_int) -> i64 {
        // SAFETY: as above.
        unsafe { ffi::sqlite3_column_int64(self.raw.as_ptr(), i) }
    }

    pub(crate) fn opt_int(&self, i: c_int) -> Option<i64> {
        (!self.is_null(i)).then(|| self.int(i))
    }

    pub(crate) fn blob(&self, i: c_int) -> &[u8] {
        // SAFETY: the pointer SQLite returns is valid for `bytes` bytes until the statement steps,
        // resets or is finalized, none of which can happen while this row is borrowed.
        unsafe {
            let p = ffi::sqlite3_column_blob(self.raw.as_ptr(), i);
            let n = ffi::sqlite3_column_bytes(self.raw.as_ptr(), i);
            if p.is_null() || n <= 0 { &[] } else { std::slice::from_raw_parts(p.cast(), n as usize) }
        }
    }

    pub(crate) fn opt_text(&self, i: c_int) -> Result<Option<String>> {
        if self.is_null(i) {
            return Ok(None);
        }
        // SAFETY: as for `blob`.
        let bytes = unsafe {
            let p = ffi::sqlite3_column_text(self.raw.as_ptr(), i);
            let n = ffi::sqlite3_column_bytes(self.raw.as_ptr(), i);
            if p.is_null() || n <= 0 { &[][..] } else { std::slice::from_raw_parts(p.cast::<u8>(), n as usize) }
        };
        std::str::from_utf8(bytes)
            .map(|s| Some(s.to_string()))
            .map_err(|_| StoreError::Invalid("text column is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_steps_and_rolls_back_on_error() {
        let dir = std::env::temp_dir().join(format!("rxm-native-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let mut n = NativeSqlite::open(&url).await.unwrap();
        n.write(|db| db.exec("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c BLOB)")).await.unwrap();
        n.write(|db| {
            let mut ins = db.prepare("INSERT INTO t (a, b, c) VALUES ($1, $2, $3)")?;
            ins.execute(params![1, "一", &b"x"[..]])?;
            ins.execute(params![2, None::<&str>, &b""[..]])
        })
        .await
        .unwrap();
        // A failing statement rolls the whole transaction back.
        let failed = n
            .write(|db| {
                let mut ins = db.prepare("INSERT INTO t (a, b, c) VALUES ($1, $2, $3)")?;
                ins.execute(params![3, "三", &b"z"[..]])?;
                ins.execute(params![1, "dup", &b""[..]])
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Sqlite { .. })), "{failed:?}");
        let rows = n
            .write(|db| {
                let mut out = Vec::new();
                db.prepare("SELECT a, b, c FROM t ORDER BY a")?.run(params![], |r| {
                    out.push((r.int(0), r.opt_text(1)?, r.blob(2).to_vec()));
                    Ok(())
                })?;
                Ok(out)
            })
            .await
            .unwrap();
        assert_eq!(rows, vec![(1, Some("一".to_string()), b"x".to_vec()), (2, None, vec![])]);
        // Parameters out of order would bind to the wrong columns: refused.
        let misnumbered = n.write(|db| db.prepare("UPDATE t SET b = $2 WHERE a = $1").map(|_| ())).await;
        assert!(matches!(misnumbered, Err(StoreError::Invalid(_))), "{misnumbered:?}");
        drop(n);
        std::fs::remove_dir_all(&dir).ok();
    }
}
