"""Schema migrations, applied in order; `PRAGMA user_version` records how many ran. Never edit a shipped one."""

MIGRATIONS: tuple[str, ...] = (
    # 1: inbox, outbox, exchanges, users
    """
    CREATE TABLE inbox (
        id          INTEGER PRIMARY KEY,
        dedupe_key  TEXT NOT NULL UNIQUE,          -- msg:<MsgId> or evt:<user>:<time>:<event>:<key>…
        user_id     TEXT NOT NULL,
        msg_type    TEXT NOT NULL,
        content     TEXT NOT NULL DEFAULT '',
        payload     TEXT NOT NULL DEFAULT '{}',    -- JSON of the remaining message fields
        received_at REAL NOT NULL,
        state       TEXT NOT NULL DEFAULT 'pending' -- pending -> answered -> done
    );
    CREATE INDEX inbox_open ON inbox(id) WHERE state != 'done';

    CREATE TABLE outbox (
        id        INTEGER PRIMARY KEY,
        inbox_id  INTEGER NOT NULL REFERENCES inbox(id),
        part      INTEGER NOT NULL,
        user_id   TEXT NOT NULL,
        msg_type  TEXT NOT NULL,                   -- markdown | text
        content   TEXT NOT NULL,
        state     TEXT NOT NULL DEFAULT 'pending', -- pending | sending | sent | failed
        attempts  INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        sent_at   REAL,
        UNIQUE (inbox_id, part)
    );

    CREATE TABLE exchanges (
        id                INTEGER PRIMARY KEY,
        inbox_id          INTEGER UNIQUE REFERENCES inbox(id),
        user_id           TEXT NOT NULL,
        mode              TEXT NOT NULL,
        question          TEXT NOT NULL,
        answer            TEXT,                    -- NULL when the model failed
        system_prompt     TEXT,
        model             TEXT,
        prompt_tokens     INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        error             TEXT,
        in_context        INTEGER NOT NULL DEFAULT 0,
        asked_at          REAL NOT NULL,
        answered_at       REAL
    );
    CREATE INDEX exchanges_user ON exchanges(user_id, id);
    CREATE INDEX exchanges_context ON exchanges(user_id, id) WHERE in_context = 1;

    CREATE TABLE users (
        user_id        TEXT PRIMARY KEY,
        mode           TEXT,                       -- chosen mode; NULL means default_mode
        last_active_at REAL
    );
    """,
    # 2: live policy (lists, words), what config.yml last seeded, the audit log, daily quota counts
    """
    CREATE TABLE policy_users (
        list    TEXT NOT NULL CHECK (list IN ('allow', 'deny', 'vip', 'admin')),
        user_id TEXT NOT NULL COLLATE NOCASE,      -- WeCom UserIDs are case-insensitive
        PRIMARY KEY (list, user_id)
    );
    CREATE TABLE sensitive_words (
        word TEXT NOT NULL PRIMARY KEY COLLATE NOCASE
    );
    CREATE TABLE policy_seed (
        key   TEXT NOT NULL PRIMARY KEY,           -- allow_users, …, sensitive_words
        value TEXT NOT NULL                        -- JSON list as config.yml had it when last applied
    );
    CREATE TABLE audit (
        id     INTEGER PRIMARY KEY,
        at     REAL NOT NULL,
        actor  TEXT NOT NULL,                      -- a UserID, "config.yml", "control"
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        before TEXT,                               -- JSON
        after  TEXT                                -- JSON
    );
    CREATE TABLE quota_usage (
        user_id TEXT NOT NULL COLLATE NOCASE,
        day     TEXT NOT NULL,                     -- local date in `timezone`, YYYY-MM-DD
        used    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, day)
    );
    CREATE INDEX exchanges_time ON exchanges(asked_at);
    """,
    # 3: small daemon state that must survive a restart (e.g. paused)
    """
    CREATE TABLE daemon_state (
        key   TEXT NOT NULL PRIMARY KEY,
        value TEXT NOT NULL                        -- JSON
    );
    """,
    # 4: an image a user sent, kept for their next question (read by the vision model)
    """
    ALTER TABLE users ADD COLUMN pending_image TEXT;
    ALTER TABLE users ADD COLUMN pending_image_at REAL;
    """,
    # 5: what makes every try of a part the same request (for WeCom's duplicate check), and when each part was last
    #    tried (pacing per member survives a restart); 'merged': a queued part folded into the one before it
    """
    ALTER TABLE outbox ADD COLUMN variant INTEGER;       -- the same for every try; differs between equal parts
    ALTER TABLE outbox ADD COLUMN media_id TEXT;         -- an image part's upload, reused by its resends
    ALTER TABLE outbox ADD COLUMN media_at REAL;         -- when media_id was uploaded (WeCom keeps it 3 days)
    ALTER TABLE outbox ADD COLUMN attempted_at REAL;     -- wall-clock time of the latest try
    CREATE INDEX outbox_recent ON outbox(user_id, attempted_at) WHERE attempted_at IS NOT NULL;
    """,
    # 6: channels. Every message, part and exchange names its channel and chat (a private chat is the user's id);
    #    rows from before are the WeCom app's private chats, and their dedupe keys get the channel's prefix.
    """
    ALTER TABLE inbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'wecom';
    ALTER TABLE inbox ADD COLUMN namespace TEXT NOT NULL DEFAULT 'wecom';  -- whose user ids: a person is (ns, id)
    ALTER TABLE inbox ADD COLUMN chat TEXT NOT NULL DEFAULT '';
    UPDATE inbox SET chat = user_id, dedupe_key = 'wecom:' || dedupe_key;
    ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'wecom';
    ALTER TABLE outbox ADD COLUMN chat TEXT NOT NULL DEFAULT '';
    UPDATE outbox SET chat = user_id;
    DROP INDEX outbox_recent;
    CREATE INDEX outbox_recent ON outbox(channel, chat, attempted_at) WHERE attempted_at IS NOT NULL;
    """,
    # 7: identity. A person is (namespace, user_id): quotas count per person; 串聊 mode, context and a kept picture
    #    are per person per chat. `users` held per-person chat state and becomes `conversations`; rows from before
    #    are the WeCom app's private chats.
    """
    ALTER TABLE exchanges ADD COLUMN namespace TEXT NOT NULL DEFAULT 'wecom';
    ALTER TABLE exchanges ADD COLUMN chat TEXT NOT NULL DEFAULT '';
    UPDATE exchanges SET chat = user_id;
    DROP INDEX exchanges_context;
    CREATE INDEX exchanges_context ON exchanges(namespace, user_id, chat, id) WHERE in_context = 1;

    CREATE TABLE conversations (
        namespace        TEXT NOT NULL,
        user_id          TEXT NOT NULL,
        chat             TEXT NOT NULL,            -- the user's id for a private chat, else a group's id
        mode             TEXT,                     -- chosen mode; NULL means default_mode
        last_active_at   REAL,
        pending_image    TEXT,                     -- a picture kept for the next question
        pending_image_at REAL,
        PRIMARY KEY (namespace, user_id, chat)
    );
    INSERT INTO conversations (namespace, user_id, chat, mode, last_active_at, pending_image, pending_image_at)
        SELECT 'wecom', user_id, user_id, mode, last_active_at, pending_image, pending_image_at FROM users;
    DROP TABLE users;

    CREATE TABLE quota_counts (
        namespace TEXT NOT NULL,
        user_id   TEXT NOT NULL COLLATE NOCASE,    -- WeCom UserIDs are case-insensitive
        day       TEXT NOT NULL,                   -- local date in `timezone`, YYYY-MM-DD
        used      INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (namespace, user_id, day)
    );
    INSERT INTO quota_counts (namespace, user_id, day, used) SELECT 'wecom', user_id, day, used FROM quota_usage;
    DROP TABLE quota_usage;
    """,
    # 8: answers that grow in place (the AI bot) keep a checkpoint of the text shown so far, so a restart can finish
    #    it honestly; users' verdicts on answers (👍/👎), the latest per answer, linked to the message answered.
    """
    CREATE TABLE drafts (
        inbox_id   INTEGER PRIMARY KEY REFERENCES inbox(id),
        text       TEXT NOT NULL,                  -- censored, as the user saw it
        updated_at REAL NOT NULL
    );
    CREATE TABLE feedback (
        channel    TEXT NOT NULL,
        answer_id  TEXT NOT NULL,                  -- the answered message's transport id
        inbox_id   INTEGER,                        -- that message, where it is still stored
        namespace  TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        rating     TEXT NOT NULL,                  -- good | bad | cancelled
        comment    TEXT NOT NULL DEFAULT '',
        reasons    TEXT NOT NULL DEFAULT '[]',     -- JSON list of the platform's reason codes
        at         REAL NOT NULL,
        PRIMARY KEY (channel, answer_id)
    );
    CREATE INDEX feedback_inbox ON feedback(inbox_id);
    """,
    # 9: retention. A pruned message keeps its inbox row as a tombstone (content and payload emptied, `pruned_at`
    #    set) so its dedupe key still stops a late retry; the partial indexes find what to prune without walking
    #    the tombstones, and the tombstones old enough to drop.
    """
    ALTER TABLE inbox ADD COLUMN pruned_at REAL;
    CREATE INDEX inbox_unpruned ON inbox(received_at) WHERE pruned_at IS NULL;
    CREATE INDEX inbox_tombstones ON inbox(received_at) WHERE pruned_at IS NOT NULL;
    """,
    # 10: the user directory (GET /v1/users): each person's latest message without sorting the inbox, and today's
    #     quota counts without walking every day's.
    """
    CREATE INDEX inbox_person ON inbox(namespace, user_id, id);
    CREATE INDEX quota_counts_day ON quota_counts(day);
    """,
    # 11: each conversation's latest message is kept with the conversation (written with the answer), not found
    #     through `inbox_person`: that index, one entry per person's message, scattered a batch of acks over as many
    #     pages as it had senders and cost a seventh of the ack path's CPU (bench/callback.py). Every chat with a
    #     stored message gets its conversation, so nobody leaves the directory.
    """
    ALTER TABLE conversations ADD COLUMN last_inbox_id INTEGER;
    INSERT INTO conversations (namespace, user_id, chat, last_inbox_id)
        SELECT namespace, user_id, chat, max(id) FROM inbox WHERE true GROUP BY namespace, user_id, chat
        ON CONFLICT (namespace, user_id, chat) DO UPDATE SET last_inbox_id = excluded.last_inbox_id;
    DROP INDEX inbox_person;
    """,
)
