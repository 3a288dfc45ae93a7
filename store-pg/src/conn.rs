//! One connection and its prepared statements: each SQL text is prepared once per connection
//! (a query then costs one round trip, not two: tokio-postgres prepares an unnamed statement
//! for every query given as text).

use std::collections::HashMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Row, Statement, Transaction};

/// A connected client with its statement cache (dropped with it: statements are per session).
pub(crate) struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    /// Wraps a fresh connection.
    pub fn new(client: Client) -> Conn {
        Conn {
            client,
            statements: HashMap::new(),
        }
    }

    /// True once the connection is gone (the next call must reconnect).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// `sql` prepared on this connection (cached).
    pub async fn statement(&mut self, sql: &str) -> Result<Statement, Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    /// Rows of `sql`.
    pub async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let statement = self.statement(sql).await?;
        self.client.query(&statement, params).await
    }

    /// At most one row of `sql`.
    pub async fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        let statement = self.statement(sql).await?;
        self.client.query_opt(&statement, params).await
    }

    /// Exactly one row of `sql`.
    pub async fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        let statement = self.statement(sql).await?;
        self.client.query_one(&statement, params).await
    }

    /// Runs `sql`; the number of rows it changed.
    pub async fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        let statement = self.statement(sql).await?;
        self.client.execute(&statement, params).await
    }

    /// Starts a transaction (prepare its statements with [`Conn::statement`] first).
    pub async fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        self.client.transaction().await
    }
}
