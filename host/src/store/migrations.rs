//! The SQLite schema, one migration per version.

/// Schema versions, applied in order; each runs in its own transaction.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: OAuth2 servers, pending authorizations, admins and their sessions.
    "CREATE TABLE oauth2_servers (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        plugin TEXT NOT NULL,
        server_url TEXT NOT NULL,
        client_id TEXT NOT NULL,
        client_secret BLOB,
        grant_type TEXT NOT NULL CHECK (grant_type IN ('authorization_code', 'client_credentials')),
        scope TEXT,
        access_token BLOB,
        refresh_token BLOB,
        token_meta TEXT,
        instance_url TEXT,
        token_status TEXT NOT NULL DEFAULT 'not_set' CHECK (token_status IN ('not_set', 'set', 'needs_reauthorization')),
        token_issued_at INTEGER,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE oauth2_pending (
        state TEXT PRIMARY KEY,
        server_id INTEGER NOT NULL REFERENCES oauth2_servers(id) ON DELETE CASCADE,
        code_verifier BLOB NOT NULL,
        redirect_uri TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE admins (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        admin_id INTEGER NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
        csrf_token TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );",
    // 2: people, provisioning targets, the job queue, per-target state,
    // history, reprovision runs and API tokens.
    "CREATE TABLE people (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        sort_name TEXT NOT NULL,
        search TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX people_by_name ON people(sort_name COLLATE NOCASE, id);
    CREATE TABLE targets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        plugin TEXT NOT NULL,
        server_id INTEGER NOT NULL REFERENCES oauth2_servers(id) ON DELETE RESTRICT,
        settings BLOB NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        scope TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        total INTEGER NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        started_at INTEGER NOT NULL,
        finished_at INTEGER
    );
    CREATE TABLE provisioned (
        person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        state TEXT NOT NULL CHECK (state IN ('pending', 'provisioned', 'removed', 'failed', 'not_in_scope')),
        remote_type TEXT,
        remote_id TEXT,
        message TEXT,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (person_id, target_id)
    );
    CREATE INDEX provisioned_by_target ON provisioned(target_id, state);
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        action TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before INTEGER NOT NULL DEFAULT 0,
        run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        last_error TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_pair ON jobs(person_id, target_id, id);
    CREATE INDEX jobs_ready ON jobs(state, not_before, id);
    CREATE TABLE history (
        id INTEGER PRIMARY KEY,
        person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        -- An audit trail: it outlives its target, keeping the target's name.
        target_id INTEGER REFERENCES targets(id) ON DELETE SET NULL,
        target_name TEXT,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        ok INTEGER NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX history_by_person ON history(person_id, id);
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        token_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER
    );",
    // 3: the hosts a server's tokens may name as their instance, on top of
    // the plugin's own patterns; space separated.
    "ALTER TABLE oauth2_servers ADD COLUMN api_hosts TEXT NOT NULL DEFAULT '';",
    // 4: the browser session that started an Obtain New Token, so
    // only that session's callback completes it.
    "ALTER TABLE oauth2_pending ADD COLUMN session TEXT NOT NULL DEFAULT '';",
    // 5: API tokens that expire or are revoked (kept, so the list shows
    // them), and when each session began.
    "ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
    ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
    ALTER TABLE sessions ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;",
    // 6: safeguards for real orgs: removals held for confirmation, retries
    // measured from the first failure, targets paused (quarantine, API
    // budget) and the API usage they last saw.
    "ALTER TABLE jobs ADD COLUMN failing_since INTEGER;
    ALTER TABLE jobs ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN confirmed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE targets ADD COLUMN removal_threshold INTEGER;
    ALTER TABLE targets ADD COLUMN api_share INTEGER;
    ALTER TABLE targets ADD COLUMN destructive_removals INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE targets ADD COLUMN paused_until INTEGER;
    ALTER TABLE targets ADD COLUMN pause_reason TEXT;
    ALTER TABLE targets ADD COLUMN pause_level INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE targets ADD COLUMN failures_in_row INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE targets ADD COLUMN failing_since INTEGER;
    ALTER TABLE targets ADD COLUMN usage_used INTEGER;
    ALTER TABLE targets ADD COLUMN usage_limit INTEGER;
    ALTER TABLE targets ADD COLUMN usage_at INTEGER;
    CREATE INDEX history_by_target ON history(target_id, at);",
    // 7: operations: the audit trail of admin actions, each attempt's
    // remote record and duration in the provisioning log, and API usage
    // samples for the dashboard.
    "CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_by_time ON audit(at);
    ALTER TABLE history ADD COLUMN remote TEXT;
    ALTER TABLE history ADD COLUMN duration_ms INTEGER;
    CREATE TABLE notifications_sent (key TEXT PRIMARY KEY, at INTEGER NOT NULL);
    -- What claim's removal threshold looks at on every claim: only the
    -- removals not yet held or confirmed, and the held ones, never the
    -- whole queue of a large run.
    CREATE INDEX jobs_unheld_removals ON jobs(target_id) WHERE state = 'queued' AND action = 'deleted' AND held = 0 AND confirmed = 0;
    CREATE INDEX jobs_held ON jobs(target_id) WHERE held = 1;
    ALTER TABLE sessions ADD COLUMN flash TEXT;
    CREATE TABLE usage_samples (
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        hour INTEGER NOT NULL,
        used INTEGER NOT NULL,
        lim INTEGER NOT NULL,
        PRIMARY KEY (target_id, hour)
    );",
    // 8: an authorization started in a popup window, whose callback page
    // then tells the server page and closes instead of redirecting.
    "ALTER TABLE oauth2_pending ADD COLUMN popup INTEGER NOT NULL DEFAULT 0;",
    // 9: how many calls a target may have in flight at once (NULL: as many
    // as the engine's workers).
    "ALTER TABLE targets ADD COLUMN concurrency INTEGER;",
    // 10: the JWT bearer grant: a server names the user its tokens act
    // as, and holds RSA signing keys (sealed) with their certificates, the
    // current one and the next during a rotation. The grant type's CHECK
    // changes, which SQLite only allows by rebuilding the table (run with
    // foreign keys off, checked before commit: see `SqliteStore::migrate`).
    "CREATE TABLE oauth2_servers_new (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        plugin TEXT NOT NULL,
        server_url TEXT NOT NULL,
        client_id TEXT NOT NULL,
        client_secret BLOB,
        grant_type TEXT NOT NULL CHECK (grant_type IN ('authorization_code', 'client_credentials', 'jwt_bearer')),
        scope TEXT,
        access_token BLOB,
        refresh_token BLOB,
        token_meta TEXT,
        instance_url TEXT,
        token_status TEXT NOT NULL DEFAULT 'not_set' CHECK (token_status IN ('not_set', 'set', 'needs_reauthorization')),
        token_issued_at INTEGER,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        api_hosts TEXT NOT NULL DEFAULT '',
        jwt_subject TEXT
    );
    INSERT INTO oauth2_servers_new (id, name, description, plugin, server_url, client_id, client_secret, grant_type, scope, access_token,
        refresh_token, token_meta, instance_url, token_status, token_issued_at, last_error, created_at, updated_at, api_hosts)
    SELECT id, name, description, plugin, server_url, client_id, client_secret, grant_type, scope, access_token,
        refresh_token, token_meta, instance_url, token_status, token_issued_at, last_error, created_at, updated_at, api_hosts FROM oauth2_servers;
    DROP TABLE oauth2_servers;
    ALTER TABLE oauth2_servers_new RENAME TO oauth2_servers;
    CREATE TABLE signing_keys (
        -- Never reused: a key tested for a switch is known by its id.
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        server_id INTEGER NOT NULL REFERENCES oauth2_servers(id) ON DELETE CASCADE,
        state TEXT NOT NULL CHECK (state IN ('current', 'next')),
        private_key BLOB NOT NULL,
        certificate TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        not_after INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (server_id, state)
    );",
    // 11: per-admin tokens ("Partner Info"): each admin's own token for a
    // server (sealed), who it acts as at the provider, and whether it last
    // worked; a sign-in in progress for an admin's own token; and the admin
    // an on-demand job acts as (NULL: the server's integration token).
    "CREATE TABLE admin_tokens (
        admin_id INTEGER NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
        server_id INTEGER NOT NULL REFERENCES oauth2_servers(id) ON DELETE CASCADE,
        access_token BLOB NOT NULL,
        refresh_token BLOB,
        token_meta TEXT NOT NULL,
        instance_url TEXT,
        login TEXT,
        status TEXT NOT NULL DEFAULT 'set' CHECK (status IN ('set', 'needs_reauthorization')),
        last_error TEXT,
        checked_at INTEGER,
        issued_at INTEGER,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (admin_id, server_id)
    );
    ALTER TABLE oauth2_pending ADD COLUMN admin_id INTEGER REFERENCES admins(id) ON DELETE CASCADE;
    ALTER TABLE jobs ADD COLUMN acting_admin INTEGER REFERENCES admins(id) ON DELETE SET NULL;",
    // 12: batches a plugin handed to a background bulk API (its reference,
    // when to ask again), and the jobs each holds, kept across restarts so
    // polling resumes instead of submitting again.
    "CREATE TABLE bulk_batches (
        id INTEGER PRIMARY KEY,
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        reference TEXT NOT NULL,
        -- The target's settings the batch was submitted under (sealed, as
        -- the target's): its polls read the results with them.
        settings BLOB NOT NULL,
        poll_at INTEGER NOT NULL,
        polls INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    ALTER TABLE jobs ADD COLUMN bulk_batch INTEGER REFERENCES bulk_batches(id) ON DELETE SET NULL;
    CREATE INDEX jobs_by_bulk_batch ON jobs(bulk_batch) WHERE bulk_batch IS NOT NULL;",
    // 13: groups of people. Membership is the people's (`groups` in their
    // record); `group_members` indexes it, written with the person. Group
    // jobs are a queue of their own (few, one at a time per group and
    // target), and each target remembers what it last provisioned of a
    // group: its remote record and the members it was sent.
    "CREATE TABLE groups (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT,
        -- A deleted group stays until its targets have removed it; its id
        -- is never reused.
        deleted INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX groups_by_name ON groups(name COLLATE NOCASE) WHERE deleted = 0;
    CREATE TABLE group_members (
        group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        PRIMARY KEY (group_id, person_id)
    );
    CREATE INDEX group_members_by_person ON group_members(person_id);
    CREATE TABLE group_jobs (
        id INTEGER PRIMARY KEY,
        group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        action TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX group_jobs_ready ON group_jobs(state, not_before, id);
    CREATE TABLE provisioned_groups (
        group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE CASCADE,
        state TEXT NOT NULL CHECK (state IN ('pending', 'provisioned', 'removed', 'failed')),
        remote_type TEXT,
        remote_id TEXT,
        -- The members the target was last sent, as a JSON list of
        -- [person id, remote type, remote id].
        members TEXT NOT NULL DEFAULT '[]',
        message TEXT,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (group_id, target_id)
    );
    -- Whether the target's plugin provisions groups (its `groups`
    -- capability), as the host last saw it.
    ALTER TABLE targets ADD COLUMN provisions_groups INTEGER NOT NULL DEFAULT 0;",
    // 14: the static bearer grant (a token an admin pastes, kept sealed
    // where a client secret would be): the grant type's CHECK again, by a
    // rebuild as in 10.
    "CREATE TABLE oauth2_servers_new (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        plugin TEXT NOT NULL,
        server_url TEXT NOT NULL,
        client_id TEXT NOT NULL,
        client_secret BLOB,
        grant_type TEXT NOT NULL CHECK (grant_type IN ('authorization_code', 'client_credentials', 'jwt_bearer', 'static_bearer')),
        scope TEXT,
        access_token BLOB,
        refresh_token BLOB,
        token_meta TEXT,
        instance_url TEXT,
        token_status TEXT NOT NULL DEFAULT 'not_set' CHECK (token_status IN ('not_set', 'set', 'needs_reauthorization')),
        token_issued_at INTEGER,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        api_hosts TEXT NOT NULL DEFAULT '',
        jwt_subject TEXT
    );
    INSERT INTO oauth2_servers_new (id, name, description, plugin, server_url, client_id, client_secret, grant_type, scope, access_token,
        refresh_token, token_meta, instance_url, token_status, token_issued_at, last_error, created_at, updated_at, api_hosts, jwt_subject)
    SELECT id, name, description, plugin, server_url, client_id, client_secret, grant_type, scope, access_token,
        refresh_token, token_meta, instance_url, token_status, token_issued_at, last_error, created_at, updated_at, api_hosts, jwt_subject FROM oauth2_servers;
    DROP TABLE oauth2_servers;
    ALTER TABLE oauth2_servers_new RENAME TO oauth2_servers;",
    // 15: the token endpoint, apart from the Server URL, for a service
    // whose authorization server lives apart from its API.
    "ALTER TABLE oauth2_servers ADD COLUMN token_url TEXT;",
];
