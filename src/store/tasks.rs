//! Tasks and their audit trail. Every change goes through a transaction that
//! also writes the matching `task_events` rows.

use chrono::{DateTime, Duration, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{
    from_ms, opt_from_ms, parse_col, to_ms, DayCount, Result, Stats, Store, StoreError, Task,
    TaskEvent, TaskFields, TaskFilter, TaskSort,
};
use crate::domain::{TaskStatus, Urgency};
use crate::events::Event;

const TASK_COLUMNS: &str = "id, reference, call_id, status, category, issue, location, requested_time, requested_at, urgency, \
     caller_name, caller_number, confidence, summary, assignee, created_at, updated_at, closed_at";

/// First reference handed out is `T-1001`.
const REFERENCE_BASE: i64 = 1000;

fn task_from_row(row: &AnyRow) -> Result<Task> {
    Ok(Task {
        id: row.try_get("id")?,
        reference: row
            .try_get::<Option<String>, _>("reference")?
            .unwrap_or_default(),
        call_id: row.try_get("call_id")?,
        status: parse_col(row, "status")?,
        category: row.try_get("category")?,
        issue: row.try_get("issue")?,
        location: row.try_get("location")?,
        requested_time: row.try_get("requested_time")?,
        requested_at: opt_from_ms(row.try_get("requested_at")?),
        urgency: parse_col(row, "urgency")?,
        caller_name: row.try_get("caller_name")?,
        caller_number: row.try_get("caller_number")?,
        confidence: row.try_get::<f64, _>("confidence")? as f32,
        summary: row.try_get("summary")?,
        assignee: row.try_get("assignee")?,
        created_at: from_ms(row.try_get("created_at")?),
        updated_at: from_ms(row.try_get("updated_at")?),
        closed_at: opt_from_ms(row.try_get("closed_at")?),
    })
}

fn event_from_row(row: &AnyRow) -> Result<TaskEvent> {
    Ok(TaskEvent {
        id: row.try_get("id")?,
        task_id: row.try_get("task_id")?,
        at: from_ms(row.try_get("at")?),
        actor: row.try_get("actor")?,
        field: row.try_get("field")?,
        from_value: row.try_get("from_value")?,
        to_value: row.try_get("to_value")?,
        note: row.try_get("note")?,
    })
}

/// The text form of each editable field, for comparison and the audit trail.
fn field_values(t: &TaskFields) -> [(&'static str, Option<String>); 10] {
    [
        ("category", t.category.clone()),
        ("issue", t.issue.clone()),
        ("location", t.location.clone()),
        ("requested_time", t.requested_time.clone()),
        ("requested_at", t.requested_at.map(|d| d.to_rfc3339())),
        ("urgency", t.urgency.map(|u| u.as_str().to_string())),
        ("caller_name", t.caller_name.clone()),
        ("caller_number", t.caller_number.clone()),
        ("confidence", t.confidence.map(|c| format!("{c:.2}"))),
        ("summary", t.summary.clone()),
    ]
}

fn current_fields(t: &Task) -> TaskFields {
    TaskFields {
        category: t.category.clone(),
        issue: t.issue.clone(),
        location: t.location.clone(),
        requested_time: t.requested_time.clone(),
        requested_at: t.requested_at,
        urgency: Some(t.urgency),
        caller_name: t.caller_name.clone(),
        caller_number: t.caller_number.clone(),
        confidence: Some(t.confidence),
        summary: t.summary.clone(),
    }
}

fn check_fields(f: &TaskFields) -> Result<()> {
    if let Some(c) = f.confidence {
        if !(0.0..=1.0).contains(&c) {
            return Err(StoreError::Invalid(format!(
                "confidence {c} is outside 0..=1"
            )));
        }
    }
    Ok(())
}

// One argument per column of the audit row keeps every call site explicit.
#[allow(clippy::too_many_arguments)]
async fn write_event(
    tx: &mut Transaction<'static, Any>,
    task_id: i64,
    at: DateTime<Utc>,
    actor: &str,
    field: &str,
    from: Option<&str>,
    to: Option<&str>,
    note: Option<&str>,
) -> Result<()> {
    sqlx::query("INSERT INTO task_events (task_id, at, actor, field, from_value, to_value, note) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(task_id)
        .bind(to_ms(at))
        .bind(actor)
        .bind(field)
        .bind(from)
        .bind(to)
        .bind(note)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Builds `WHERE …` and its text binds for a filter; binds start at `$1`.
fn where_clause(f: &TaskFilter) -> (String, Vec<String>) {
    let mut conds = Vec::new();
    let mut binds = Vec::new();
    let mut push = |cond: &str, v: String, binds: &mut Vec<String>| {
        binds.push(v);
        conds.push(cond.replace('?', &format!("${}", binds.len())));
    };
    if let Some(s) = f.status {
        push("status = ?", s.as_str().to_string(), &mut binds);
    }
    if let Some(c) = &f.category {
        push("category = ?", c.clone(), &mut binds);
    }
    if let Some(u) = f.urgency {
        push("urgency = ?", u.as_str().to_string(), &mut binds);
    }
    if let Some(text) = f.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let escaped = text
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        binds.push(pattern);
        let n = binds.len();
        let cols = [
            "reference",
            "issue",
            "location",
            "caller_name",
            "caller_number",
            "summary",
            "category",
        ];
        let any: Vec<String> = cols
            .iter()
            .map(|c| format!("LOWER(COALESCE({c}, '')) LIKE ${n} ESCAPE '\\'"))
            .collect();
        conds.push(format!("({})", any.join(" OR ")));
    }
    let clause = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    (clause, binds)
}

impl Store {
    /// Creates a task in status `new` with reference `T-…`, logging its creation.
    pub async fn create_task(
        &self,
        call_id: Option<i64>,
        fields: TaskFields,
        actor: &str,
    ) -> Result<Task> {
        check_fields(&fields)?;
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO tasks (call_id, status, category, issue, location, requested_time, requested_at, urgency, \
             caller_name, caller_number, confidence, summary, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(call_id)
        .bind(TaskStatus::New.as_str())
        .bind(&fields.category)
        .bind(&fields.issue)
        .bind(&fields.location)
        .bind(&fields.requested_time)
        .bind(fields.requested_at.map(to_ms))
        .bind(fields.urgency.unwrap_or(Urgency::Normal).as_str())
        .bind(&fields.caller_name)
        .bind(&fields.caller_number)
        .bind(f64::from(fields.confidence.unwrap_or(0.0)))
        .bind(&fields.summary)
        .bind(to_ms(now))
        .bind(to_ms(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound(format!("call {}", call_id.unwrap_or_default())),
            _ => StoreError::Db(e),
        })?
        .try_get("id")?;
        let reference = format!("T-{}", REFERENCE_BASE + id);
        sqlx::query("UPDATE tasks SET reference = $1 WHERE id = $2")
            .bind(&reference)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        write_event(
            &mut tx,
            id,
            now,
            actor,
            "status",
            None,
            Some(TaskStatus::New.as_str()),
            Some("created"),
        )
        .await?;
        tx.commit().await?;
        self.publish(Event::TaskCreated {
            reference: reference.clone(),
            status: TaskStatus::New,
        });
        self.task(&reference).await
    }

    pub async fn task(&self, reference: &str) -> Result<Task> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE reference = $1"
        ))
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("task {reference}")))?;
        task_from_row(&row)
    }

    /// The task a call produced, if any.
    pub async fn task_for_call(&self, call_id: i64) -> Result<Option<Task>> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE call_id = $1 ORDER BY id LIMIT 1"
        ))
        .bind(call_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>> {
        let (clause, binds) = where_clause(filter);
        let order = match filter.sort {
            TaskSort::Newest => "id DESC",
            TaskSort::Oldest => "id ASC",
            TaskSort::Updated => "updated_at DESC, id DESC",
            TaskSort::Urgency => {
                "CASE urgency WHEN 'emergency' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END, id DESC"
            }
        };
        let n = binds.len();
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks {clause} ORDER BY {order} LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b.clone());
        }
        let limit = if filter.limit > 0 {
            filter.limit
        } else {
            i64::MAX
        };
        let rows = q
            .bind(limit)
            .bind(filter.offset.max(0))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(task_from_row).collect()
    }

    /// How many tasks match the filter (ignoring limit and offset).
    pub async fn count_tasks(&self, filter: &TaskFilter) -> Result<i64> {
        let (clause, binds) = where_clause(filter);
        let sql = format!("SELECT COUNT(*) AS n FROM tasks {clause}");
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b.clone());
        }
        Ok(q.fetch_one(&self.pool).await?.try_get("n")?)
    }

    /// Count per status, every status present (zero when none).
    pub async fn count_by_status(&self) -> Result<Vec<(TaskStatus, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<(TaskStatus, i64)> = TaskStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for r in &rows {
            let st: TaskStatus = parse_col(r, "status")?;
            let n: i64 = r.try_get("n")?;
            if let Some(slot) = out.iter_mut().find(|(s, _)| *s == st) {
                slot.1 = n;
            }
        }
        Ok(out)
    }

    async fn lock_task(&self, tx: &mut Transaction<'static, Any>, reference: &str) -> Result<Task> {
        let lock = if self.backend == super::Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE reference = $1{lock}"
        ))
        .bind(reference)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("task {reference}")))?;
        task_from_row(&row)
    }

    /// Sets the given fields (`None` leaves a field as it is); one audit event per changed field.
    pub async fn update_task_fields(
        &self,
        reference: &str,
        patch: &TaskFields,
        actor: &str,
        note: Option<&str>,
    ) -> Result<Task> {
        check_fields(patch)?;
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let task = self.lock_task(&mut tx, reference).await?;
        let old = field_values(&current_fields(&task));
        let new = field_values(patch);
        let mut changed = 0;
        for ((name, before), (_, after)) in old.iter().zip(new.iter()) {
            if let Some(after) = after {
                if before.as_deref() != Some(after.as_str()) {
                    write_event(
                        &mut tx,
                        task.id,
                        now,
                        actor,
                        name,
                        before.as_deref(),
                        Some(after),
                        note,
                    )
                    .await?;
                    changed += 1;
                }
            }
        }
        if changed > 0 {
            sqlx::query(
                "UPDATE tasks SET category = COALESCE($1, category), issue = COALESCE($2, issue), location = COALESCE($3, location), \
                 requested_time = COALESCE($4, requested_time), requested_at = COALESCE($5, requested_at), urgency = COALESCE($6, urgency), \
                 caller_name = COALESCE($7, caller_name), caller_number = COALESCE($8, caller_number), confidence = COALESCE($9, confidence), \
                 summary = COALESCE($10, summary), updated_at = $11 WHERE id = $12",
            )
            .bind(&patch.category)
            .bind(&patch.issue)
            .bind(&patch.location)
            .bind(&patch.requested_time)
            .bind(patch.requested_at.map(to_ms))
            .bind(patch.urgency.map(|u| u.as_str()))
            .bind(&patch.caller_name)
            .bind(&patch.caller_number)
            .bind(patch.confidence.map(f64::from))
            .bind(&patch.summary)
            .bind(to_ms(now))
            .bind(task.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if changed > 0 {
            self.publish(Event::TaskUpdated {
                reference: reference.to_string(),
                status: task.status,
            });
        }
        self.task(reference).await
    }

    /// Moves a task; an illegal move is a [`StoreError::Conflict`] saying which move and why.
    pub async fn transition_task(
        &self,
        reference: &str,
        to: TaskStatus,
        actor: &str,
        note: Option<&str>,
    ) -> Result<Task> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let task = self.lock_task(&mut tx, reference).await?;
        task.status
            .check_move(to)
            .map_err(|e| StoreError::Conflict(format!("{reference}: {e}")))?;
        let closed_at = if to == TaskStatus::Closed {
            Some(to_ms(now))
        } else {
            None
        };
        sqlx::query("UPDATE tasks SET status = $1, updated_at = $2, closed_at = $3 WHERE id = $4")
            .bind(to.as_str())
            .bind(to_ms(now))
            .bind(closed_at)
            .bind(task.id)
            .execute(&mut *tx)
            .await?;
        write_event(
            &mut tx,
            task.id,
            now,
            actor,
            "status",
            Some(task.status.as_str()),
            Some(to.as_str()),
            note,
        )
        .await?;
        tx.commit().await?;
        self.publish(Event::TaskUpdated {
            reference: reference.to_string(),
            status: to,
        });
        self.task(reference).await
    }

    /// Sets or clears the assignee.
    pub async fn assign_task(
        &self,
        reference: &str,
        assignee: Option<&str>,
        actor: &str,
    ) -> Result<Task> {
        let assignee = assignee.map(str::trim).filter(|a| !a.is_empty());
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let task = self.lock_task(&mut tx, reference).await?;
        if task.assignee.as_deref() != assignee {
            sqlx::query("UPDATE tasks SET assignee = $1, updated_at = $2 WHERE id = $3")
                .bind(assignee)
                .bind(to_ms(now))
                .bind(task.id)
                .execute(&mut *tx)
                .await?;
            write_event(
                &mut tx,
                task.id,
                now,
                actor,
                "assignee",
                task.assignee.as_deref(),
                assignee,
                None,
            )
            .await?;
        }
        tx.commit().await?;
        self.publish(Event::TaskUpdated {
            reference: reference.to_string(),
            status: task.status,
        });
        self.task(reference).await
    }

    pub async fn add_task_note(
        &self,
        reference: &str,
        actor: &str,
        note: &str,
    ) -> Result<TaskEvent> {
        let note = note.trim();
        if note.is_empty() {
            return Err(StoreError::Invalid("a note needs some text".into()));
        }
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let task = self.lock_task(&mut tx, reference).await?;
        write_event(&mut tx, task.id, now, actor, "note", None, None, Some(note)).await?;
        sqlx::query("UPDATE tasks SET updated_at = $1 WHERE id = $2")
            .bind(to_ms(now))
            .bind(task.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.publish(Event::TaskUpdated {
            reference: reference.to_string(),
            status: task.status,
        });
        let events = self.task_events(reference).await?;
        events
            .into_iter()
            .last()
            .ok_or_else(|| StoreError::NotFound(format!("task {reference}")))
    }

    /// The audit trail, oldest first.
    pub async fn task_events(&self, reference: &str) -> Result<Vec<TaskEvent>> {
        let task = self.task(reference).await?;
        let rows = sqlx::query("SELECT id, task_id, at, actor, field, from_value, to_value, note FROM task_events WHERE task_id = $1 ORDER BY id")
            .bind(task.id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Figures for the statistics page over the last `days` days (UTC).
    pub async fn stats(&self, now: DateTime<Utc>, days: i64) -> Result<Stats> {
        let days = days.clamp(1, 366);
        let first_day = (now - Duration::days(days - 1)).date_naive();
        let since = first_day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let mut per_day: Vec<DayCount> = (0..days)
            .map(|i| DayCount {
                day: (first_day + Duration::days(i))
                    .format("%Y-%m-%d")
                    .to_string(),
                calls: 0,
                tasks: 0,
            })
            .collect();
        let bucket = |ms: i64| ((from_ms(ms) - since).num_days()) as usize;
        for ms in self.call_start_times(since).await? {
            if let Some(d) = per_day.get_mut(bucket(ms)) {
                d.calls += 1;
            }
        }
        let created = sqlx::query("SELECT created_at FROM tasks WHERE created_at >= $1")
            .bind(to_ms(since))
            .fetch_all(&self.pool)
            .await?;
        for r in &created {
            if let Some(d) = per_day.get_mut(bucket(r.try_get("created_at")?)) {
                d.tasks += 1;
            }
        }
        let rows = sqlx::query("SELECT COALESCE(category, 'uncategorised') AS c, COUNT(*) AS n FROM tasks GROUP BY COALESCE(category, 'uncategorised') ORDER BY n DESC, c")
            .fetch_all(&self.pool)
            .await?;
        let by_category = rows
            .iter()
            .map(|r| Ok((r.try_get("c")?, r.try_get("n")?)))
            .collect::<Result<Vec<_>>>()?;
        let by_status = self.count_by_status().await?;
        let tasks_total = by_status.iter().map(|(_, n)| n).sum();
        let escalated_total: i64 = sqlx::query("SELECT COUNT(DISTINCT task_id) AS n FROM task_events WHERE field = 'status' AND to_value = 'escalated'")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let closed =
            sqlx::query("SELECT created_at, closed_at FROM tasks WHERE closed_at IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        let mut secs: Vec<f64> = closed
            .iter()
            .map(|r| {
                let a: i64 = r.try_get("created_at")?;
                let b: i64 = r.try_get("closed_at")?;
                Ok((b - a) as f64 / 1000.0)
            })
            .collect::<Result<_>>()?;
        secs.sort_by(|a, b| a.total_cmp(b));
        let median_close_secs = match secs.len() {
            0 => None,
            n if n % 2 == 1 => Some(secs[n / 2]),
            n => Some((secs[n / 2 - 1] + secs[n / 2]) / 2.0),
        };
        Ok(Stats {
            per_day,
            by_category,
            by_status,
            tasks_total,
            escalated_total,
            median_close_secs,
        })
    }
}
