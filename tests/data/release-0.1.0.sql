-- A database as release 0.1.0 (schema 1-4) left it: made with that release's own stores.
-- Loaded by tests/e2e/test_upgrade.py to check the upgrade keeps everything.
BEGIN TRANSACTION;
CREATE TABLE audit (
        id     INTEGER PRIMARY KEY,
        at     REAL NOT NULL,
        actor  TEXT NOT NULL,                      -- a UserID, "config.yml", "control"
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        before TEXT,                               -- JSON
        after  TEXT                                -- JSON
    );
CREATE TABLE daemon_state (
        key   TEXT NOT NULL PRIMARY KEY,
        value TEXT NOT NULL                        -- JSON
    );
INSERT INTO "daemon_state" VALUES('paused','{"notice": null, "by": "ops"}');
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
INSERT INTO "exchanges" VALUES(1,1,'zhangsan','串聊','什么是WAL','WAL 是预写日志。',NULL,'gpt-4o-mini',20,10,NULL,1,1795000000.0,1795000002.0);
INSERT INTO "exchanges" VALUES(2,2,'zhangsan','串聊','那fsync呢','fsync 把数据刷到磁盘。',NULL,'gpt-4o-mini',20,10,NULL,1,1795000060.0,1795000062.0);
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
INSERT INTO "inbox" VALUES(1,'msg:7001','zhangsan','text','什么是WAL','{}',1795000000.0,'done');
INSERT INTO "inbox" VALUES(2,'msg:7002','zhangsan','text','那fsync呢','{}',1795000060.0,'done');
INSERT INTO "inbox" VALUES(3,'msg:7003','lisi','text','还没回答的问题','{}',1795000120.0,'pending');
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
INSERT INTO "outbox" VALUES(1,1,0,'zhangsan','markdown','WAL 是预写日志。','sent',1,NULL,1795000003.0);
INSERT INTO "outbox" VALUES(2,2,0,'zhangsan','markdown','fsync 把数据刷到磁盘。','sent',1,NULL,1795000003.0);
CREATE TABLE policy_seed (
        key   TEXT NOT NULL PRIMARY KEY,           -- allow_users, …, sensitive_words
        value TEXT NOT NULL                        -- JSON list as config.yml had it when last applied
    );
INSERT INTO "policy_seed" VALUES('allow_users','[]');
INSERT INTO "policy_seed" VALUES('deny_users','[]');
INSERT INTO "policy_seed" VALUES('vip_users','[]');
INSERT INTO "policy_seed" VALUES('admin_users','[]');
INSERT INTO "policy_seed" VALUES('sensitive_words','[]');
CREATE TABLE policy_users (
        list    TEXT NOT NULL CHECK (list IN ('allow', 'deny', 'vip', 'admin')),
        user_id TEXT NOT NULL COLLATE NOCASE,      -- WeCom UserIDs are case-insensitive
        PRIMARY KEY (list, user_id)
    );
INSERT INTO "policy_users" VALUES('vip','wangwu');
CREATE TABLE quota_usage (
        user_id TEXT NOT NULL COLLATE NOCASE,
        day     TEXT NOT NULL,                     -- local date in `timezone`, YYYY-MM-DD
        used    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, day)
    );
INSERT INTO "quota_usage" VALUES('zhangsan','2026-11-18',2);
CREATE TABLE sensitive_words (
        word TEXT NOT NULL PRIMARY KEY COLLATE NOCASE
    );
CREATE TABLE users (
        user_id        TEXT PRIMARY KEY,
        mode           TEXT,                       -- chosen mode; NULL means default_mode
        last_active_at REAL
    , pending_image TEXT, pending_image_at REAL);
INSERT INTO "users" VALUES('zhangsan','串聊',1795000060.0,NULL,NULL);
CREATE INDEX inbox_open ON inbox(id) WHERE state != 'done';
CREATE INDEX exchanges_user ON exchanges(user_id, id);
CREATE INDEX exchanges_context ON exchanges(user_id, id) WHERE in_context = 1;
CREATE INDEX exchanges_time ON exchanges(asked_at);
COMMIT;
PRAGMA user_version = 4;
