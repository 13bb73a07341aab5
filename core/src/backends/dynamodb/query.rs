//! `query_all`: one `Query` followed page by page through
//! `LastEvaluatedKey`, the one paging loop of every query the backend makes.

use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;

use super::DynamoBackend;
use super::item::Item;
use crate::error::Result;

/// The pages of one `Query`, read one at a time by [`Pages::next_page`].
pub(super) struct Pages<'a> {
    backend: &'a DynamoBackend,
    query: QueryFluentBuilder,
    /// Where the next page starts; `None` before the first.
    start: Option<Item>,
    done: bool,
}

impl DynamoBackend {
    /// A consistent `Query` on the table, set up by `build`, to be read a
    /// page at a time; a reader that has what it wants stops early.
    pub(super) fn query_all(
        &self,
        build: impl FnOnce(QueryFluentBuilder) -> QueryFluentBuilder,
    ) -> Pages<'_> {
        Pages {
            backend: self,
            query: build(
                self.client
                    .query()
                    .table_name(&self.table)
                    .consistent_read(true),
            ),
            start: None,
            done: false,
        }
    }
}

impl Pages<'_> {
    /// The next page, or `None` after the last one. Fails once the store
    /// is closed.
    pub(super) async fn next_page(&mut self) -> Result<Option<QueryOutput>> {
        if self.done {
            return Ok(None);
        }
        self.backend.check_open()?;
        let mut out = self
            .query
            .clone()
            .set_exclusive_start_key(self.start.take())
            .send()
            .await
            .map_err(|e| self.backend.sdk_err("Query", e))?;
        match out.last_evaluated_key.take() {
            Some(k) if !k.is_empty() => self.start = Some(k),
            _ => self.done = true,
        }
        Ok(Some(out))
    }
}
