"""Hand-labelled whole traces: realistic Claude Code turns with the signals a reader sees in them.

Each ``Labelled`` holds a trace built the way the assembler stores one (calls in issue order,
``batch`` = the n-th tool-using assistant message, failures with their error) and the labels:
workflow type, exploration depth, categories, and whether the turn shows a constraint, a
pruning decision, a self-correction or an explicit plan. Labels were written from reading the
turn, before the extractor's rules.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from claude_bc.capture.schema import ClaudeTrace, ToolCall

DB, REF, DBG, EXP, SYS, MULTI, CPLX = (
    "database_queries",
    "code_refactoring",
    "debugging",
    "file_exploration",
    "system_commands",
    "multi_tool_workflows",
    "complex_reasoning",
)


@dataclass
class Labelled:
    name: str
    trace: ClaudeTrace
    workflow: str
    depth: str
    categories: frozenset[str]
    signals: frozenset[str] = field(default_factory=frozenset)  # constraint/pruning/...


def call(
    tool: str,
    args: dict[str, Any],
    output: str = "",
    reasoning: str = "",
    *,
    batch: int,
    error: str | None = None,
    thinking: str = "",
    agent: str | None = None,
) -> ToolCall:
    return ToolCall(
        tool=tool,
        args=args,
        output=error or output,
        reasoning=reasoning,
        thinking=thinking,
        success=error is None,
        error=error,
        batch=batch,
        agent_id=agent,
        tool_use_id=f"toolu_{tool}_{batch}_{zlib.crc32(repr(args).encode()):08x}",
    )


def trace(name: str, prompt: str, calls: list[ToolCall], answer: str) -> ClaudeTrace:
    return ClaudeTrace(
        trace_id=f"labelled-{name}",
        user_prompt=prompt,
        tool_calls=calls,
        claude_response=answer,
        complete=True,
        sources=["manual"],
    )


def bash(cmd: str, **kw: Any) -> ToolCall:
    return call("Bash", {"command": cmd}, **kw)


def read(path: str, **kw: Any) -> ToolCall:
    return call("Read", {"file_path": path}, **kw)


def grep(pattern: str, **kw: Any) -> ToolCall:
    return call("Grep", {"pattern": pattern}, **kw)


def edit(path: str, old: str, new: str, **kw: Any) -> ToolCall:
    return call("Edit", {"file_path": path, "old_string": old, "new_string": new}, **kw)


LONG_ANSWER = (
    "The change is in place and the tests pass. In short, the handler now validates the token "
    "before it touches the session store, so an expired token returns 401 instead of crashing "
    "with a KeyError. I also added a regression test that sends an expired token and checks the "
    "status code, and I left the public signature of `authenticate` unchanged so the other "
    "services keep working."
)

TRACES: list[Labelled] = [
    Labelled(
        "transformer-db",
        trace(
            "transformer-db",
            "What's the difference between transformer 1 and transformer 2 in the substation DB?",
            [
                read(
                    "/srv/cc/schema.sql",
                    output="CREATE TABLE trf_substation_main_1 (...);",
                    reasoning="First I'll read the schema, then search the code for the "
                    "transformer tables, and finally query both tables to compare them.",
                    batch=0,
                ),
                grep("trf_substation_main", output="api/transformers.py:12", batch=1),
                bash(
                    "psql -c 'SELECT * FROM trf_substation_main_1 LIMIT 5'",
                    output="id | kva | ...",
                    reasoning="Querying transformer 1.",
                    batch=2,
                ),
                bash(
                    "psql -c 'SELECT * FROM trf_substation_main_2 LIMIT 5'",
                    output="id | kva | ...",
                    batch=3,
                ),
            ],
            "Transformer 1 is rated 500 kVA and transformer 2 is rated 750 kVA. " * 5,
        ),
        workflow="exploratory",  # looks around before it acts: exploratory
        depth="moderate",
        categories=frozenset({DB, MULTI, CPLX}),
        signals=frozenset({"plan"}),
    ),
    Labelled(
        "explore-auth",
        trace(
            "explore-auth",
            "How does authentication work in this codebase?",
            [
                call("Glob", {"pattern": "**/auth*.py"}, output="app/auth.py", batch=0),
                read("app/auth.py", output="def authenticate(token): ...", batch=1),
                grep("authenticate\\(", output="app/views.py:8\napp/api.py:20", batch=2),
                read("app/views.py", output="...", batch=3),
                read("app/settings.py", output="AUTH_BACKENDS = [...]", batch=4),
            ],
            "Authentication is token based. " + "The `authenticate` function decodes a JWT. " * 8,
        ),
        workflow="exploratory",
        depth="moderate",
        categories=frozenset({EXP, MULTI}),
    ),
    Labelled(
        "parallel-reads",
        trace(
            "parallel-reads",
            "Summarise what the three services in services/ do.",
            [
                read(
                    "services/billing/main.py",
                    output="...",
                    reasoning="Reading the three entry points in parallel.",
                    batch=0,
                ),
                read("services/mail/main.py", output="...", batch=0),
                read("services/search/main.py", output="...", batch=0),
            ],
            "billing charges cards through Stripe, mail sends templated mail through SES, and "
            "search indexes the product catalogue into OpenSearch. " * 3,
        ),
        workflow="parallel",
        depth="moderate",
        categories=frozenset({EXP}),
    ),
    Labelled(
        "debug-keyerror",
        trace(
            "debug-keyerror",
            "The login endpoint crashes with KeyError: 'exp'. Fix it.",
            [
                bash(
                    "pytest tests/test_login.py -x",
                    error="Exit code 1\nKeyError: 'exp'",
                    reasoning="Let me reproduce the failure first.",
                    batch=0,
                ),
                read("app/auth.py", output="claims['exp']", batch=1),
                edit(
                    "app/auth.py",
                    "claims['exp']",
                    "claims.get('exp')",
                    reasoning="The token has no `exp` claim when it never expires. I'll use "
                    "`.get` and keep the signature of `authenticate` unchanged, since other "
                    "services call it.",
                    batch=2,
                ),
                bash("pytest tests/test_login.py -x", output="1 passed", batch=3),
            ],
            LONG_ANSWER,
        ),
        workflow="iterative",
        depth="moderate",
        categories=frozenset({DBG, MULTI}),
        signals=frozenset({"constraint"}),
    ),
    Labelled(
        "retry-path",
        trace(
            "retry-path",
            "Show me the nginx config for the staging site.",
            [
                bash(
                    "cat /etc/nginx/sites-enabled/staging",
                    error="Exit code 1\ncat: /etc/nginx/sites-enabled/staging: No such file",
                    batch=0,
                ),
                bash(
                    "ls /etc/nginx/sites-enabled/",
                    output="staging.conf\nprod.conf",
                    reasoning="That path doesn't exist. Let me list the folder to find the "
                    "right name.",
                    batch=1,
                ),
                bash("cat /etc/nginx/sites-enabled/staging.conf", output="server { ... }", batch=2),
            ],
            "Here is the staging config: it listens on 443 and proxies to the app on port 8000. "
            * 4,
        ),
        workflow="iterative",
        depth="moderate",
        categories=frozenset({SYS, EXP}),
        signals=frozenset({"correction"}),
    ),
    Labelled(
        "refactor-extract",
        trace(
            "refactor-extract",
            "Refactor the duplicated date parsing in reports.py and invoices.py into one helper.",
            [
                grep(
                    "strptime",
                    output="reports.py:14\ninvoices.py:31",
                    reasoning="Finding every copy of the parsing code.",
                    batch=0,
                ),
                read("reports.py", output="...", batch=1),
                read("invoices.py", output="...", batch=1),
                call(
                    "Write",
                    {"file_path": "dates.py", "content": "def parse_date(s): ..."},
                    reasoning="I considered putting the helper in utils.py, but that module is "
                    "already a grab bag; a small dates.py is clearer.",
                    batch=2,
                ),
                edit("reports.py", "datetime.strptime(s, FMT)", "parse_date(s)", batch=3),
                edit("invoices.py", "datetime.strptime(s, FMT)", "parse_date(s)", batch=4),
                bash("pytest -q", output="48 passed", batch=5),
            ],
            "I moved the parsing into `dates.parse_date` and both modules now call it. " * 4,
        ),
        workflow="parallel",
        depth="thorough",
        categories=frozenset({REF, MULTI, CPLX}),
        signals=frozenset({"pruning"}),
    ),
    Labelled(
        "one-shot-answer",
        trace(
            "one-shot-answer",
            "What does HTTP 418 mean?",
            [],
            "It's 'I'm a teapot', an April Fools' status from RFC 2324.",
        ),
        workflow="linear",
        depth="minimal",
        categories=frozenset(),
    ),
    Labelled(
        "git-status",
        trace(
            "git-status",
            "What branch am I on and is anything uncommitted?",
            [bash("git status --short --branch", output="## main\n M app.py", batch=0)],
            "You're on main and app.py has uncommitted changes.",
        ),
        workflow="linear",
        depth="minimal",
        categories=frozenset({SYS}),
    ),
    Labelled(
        "docker-restart",
        trace(
            "docker-restart",
            "Restart the worker container and show me its logs.",
            [
                bash("docker compose restart worker", output="Restarting worker ... done", batch=0),
                bash("docker compose logs --tail 50 worker", output="worker | ready", batch=1),
            ],
            "The worker restarted cleanly and is ready; the last 50 log lines show no errors.",
        ),
        workflow="linear",
        depth="minimal",
        categories=frozenset({SYS}),
    ),
    Labelled(
        "sqlite-orders",
        trace(
            "sqlite-orders",
            "How many orders were placed last week?",
            [
                bash(
                    "sqlite3 shop.db '.schema orders'",
                    output="CREATE TABLE orders (id, created_at, total)",
                    batch=0,
                ),
                bash(
                    'sqlite3 shop.db "SELECT COUNT(*) FROM orders WHERE created_at >= '
                    "date('now','-7 days')\"",
                    output="412",
                    batch=1,
                ),
            ],
            "412 orders were placed in the last seven days, counted from `orders.created_at`.",
        ),
        workflow="linear",
        depth="minimal",
        categories=frozenset({DB}),
    ),
    Labelled(
        "sql-retry",
        trace(
            "sql-retry",
            "List the ten customers with the highest lifetime spend.",
            [
                bash(
                    "psql -c 'SELECT name, SUM(total) FROM orders GROUP BY name LIMIT 10'",
                    error='ERROR: column "name" does not exist',
                    batch=0,
                ),
                bash(
                    "psql -c '\\d orders'",
                    output="customer_id | total | created_at",
                    reasoning="The orders table has no name column. Let me check its columns.",
                    batch=1,
                ),
                bash(
                    "psql -c 'SELECT c.name, SUM(o.total) s FROM orders o JOIN customers c ON "
                    "c.id = o.customer_id GROUP BY c.name ORDER BY s DESC LIMIT 10'",
                    output="Acme | 91200\n...",
                    reasoning="I need to join customers to get the names.",
                    batch=2,
                ),
            ],
            "Here are the ten customers by lifetime spend; Acme leads with 91,200. " * 3,
        ),
        workflow="iterative",
        depth="moderate",
        categories=frozenset({DB}),
        signals=frozenset({"correction"}),
    ),
    Labelled(
        "edit-test-loop",
        trace(
            "edit-test-loop",
            "Make test_parse_dates pass.",
            [
                bash("pytest tests/test_dates.py", error="Exit code 1\nAssertionError", batch=0),
                read("dates.py", output="...", batch=1),
                edit("dates.py", "%d/%m", "%m/%d", batch=2),
                bash(
                    "pytest tests/test_dates.py",
                    error="Exit code 1\nValueError: unconverted data",
                    batch=3,
                ),
                edit(
                    "dates.py",
                    "%m/%d",
                    "%m/%d/%Y",
                    reasoning="Still failing: the year is part of the string too. Adding it to "
                    "the format.",
                    batch=4,
                ),
                bash("pytest tests/test_dates.py", output="3 passed", batch=5),
            ],
            "test_parse_dates passes now. The parser used a day-first format, but the fixture "
            "dates are month-first and carry a four-digit year, so `%d/%m` became `%m/%d/%Y`. "
            "The other two tests in the file still pass, and no other module calls this "
            "function, so nothing else needed to change. If some input files are day-first, a "
            "format option would be the next step.",
        ),
        workflow="iterative",
        depth="thorough",
        categories=frozenset({DBG, MULTI}),
        signals=frozenset({"correction"}),
    ),
    Labelled(
        "big-migration",
        trace(
            "big-migration",
            "Rename the `User.fullname` field to `display_name` everywhere.",
            [
                grep(
                    "fullname",
                    output="\n".join(f"app/m{i}.py:3" for i in range(6)),
                    reasoning="Plan: 1. find every use of fullname 2. rename the model field "
                    "with a migration 3. update the callers 4. run the tests.",
                    batch=0,
                ),
                *[edit(f"app/m{i}.py", "fullname", "display_name", batch=1 + i) for i in range(6)],
                bash(
                    "python manage.py makemigrations",
                    output="Migrations for 'app': 0042_rename.py",
                    reasoning="The column must keep its data, so I'll make a rename migration "
                    "rather than drop and re-add the field.",
                    batch=7,
                ),
                bash("pytest -q", output="120 passed", batch=8),
            ],
            "Renamed the field across six modules with a data-preserving migration. " * 4,
        ),
        workflow="linear",
        depth="thorough",
        categories=frozenset({REF, DB, MULTI, CPLX}),
        signals=frozenset({"plan", "constraint", "pruning"}),
    ),
    Labelled(
        "subagent-survey",
        trace(
            "subagent-survey",
            "Use a subagent to find every place we read environment variables.",
            [
                call(
                    "Agent",
                    {"description": "Find env reads", "prompt": "Find os.environ uses"},
                    output="Found 7 places.",
                    reasoning="Delegating the search to a subagent.",
                    batch=0,
                ),
                grep("os.environ", output="a.py\nb.py", batch=0, agent="a1"),
                read("a.py", output="...", batch=1, agent="a1"),
                read("b.py", output="...", batch=1, agent="a1"),
            ],
            "There are seven reads of environment variables, listed below with file and line. " * 3,
        ),
        workflow="linear",
        depth="moderate",
        categories=frozenset({EXP}),
    ),
    Labelled(
        "perf-investigation",
        trace(
            "perf-investigation",
            "The /search endpoint got slow after the last deploy. Find out why.",
            [
                bash(
                    "git log --oneline -5",
                    output="a1b2 add fuzzy search\n...",
                    reasoning="I'll start by looking at what changed in the last deploy, then "
                    "profile the endpoint, and then compare the queries.",
                    batch=0,
                ),
                bash("git show a1b2 --stat", output="search/query.py | 40 +++", batch=1),
                read("search/query.py", output="for term in terms: db.query(...)", batch=2),
                bash(
                    "python -m cProfile -s cumtime bench_search.py | head -20",
                    output="db.query 4.1s",
                    reasoning="An index could help, but the real problem is one query per "
                    "term; batching them is the better fix.",
                    batch=3,
                ),
            ],
            "The slowdown comes from commit a1b2, which runs one database query per search "
            "term. " * 4,
        ),
        workflow="exploratory",
        depth="moderate",
        categories=frozenset({DBG, MULTI, CPLX, SYS}),
        signals=frozenset({"plan", "pruning"}),
    ),
    Labelled(
        "wrong-file",
        trace(
            "wrong-file",
            "Change the default port to 9000.",
            [
                grep("8000", output="config/dev.py:4\nconfig/base.py:10", batch=0),
                edit("config/dev.py", "PORT = 8000", "PORT = 9000", batch=1),
                edit(
                    "config/dev.py",
                    "PORT = 9000",
                    "PORT = 8000",
                    reasoning="Actually, dev.py only overrides it locally; the default lives "
                    "in base.py. Reverting that and editing base.py instead.",
                    batch=2,
                ),
                edit("config/base.py", "PORT = 8000", "PORT = 9000", batch=3),
            ],
            "The default port is now 9000, set in config/base.py.",
        ),
        workflow="linear",
        depth="moderate",
        categories=frozenset({MULTI}),
        signals=frozenset({"correction"}),
    ),
    Labelled(
        "readonly-fs",
        trace(
            "readonly-fs",
            "Add a cron entry that cleans /var/tmp every night.",
            [
                bash(
                    "crontab -l",
                    output="0 3 * * * /usr/bin/backup",
                    reasoning="Checking the existing crontab first.",
                    batch=0,
                ),
                bash(
                    "(crontab -l; echo '0 2 * * * find /var/tmp -mtime +1 -delete') | crontab -",
                    output="",
                    reasoning="I don't have root here, so I can't write /etc/cron.d; I'll add "
                    "it to the user crontab instead.",
                    batch=1,
                ),
            ],
            "Added a nightly 02:00 job to your user crontab that deletes files older than a day "
            "from /var/tmp; the existing backup job is untouched. " * 2,
        ),
        workflow="linear",
        depth="minimal",
        categories=frozenset({SYS}),
        signals=frozenset({"constraint"}),
    ),
    Labelled(
        "incomplete-probe",
        trace(
            "incomplete-probe",
            "Why is the CI job failing?",
            [
                bash("gh run view --log-failed", output="npm ERR! peer dep conflict", batch=0),
                read("package.json", output="...", batch=1),
                grep("react-dom", output="package.json:12", batch=2),
                read("package-lock.json", output="...", batch=3),
            ],
            "CI fails at `npm ci` because react-dom 19 needs react 19, but package.json pins "
            "react 18. Bumping react to 19 (or pinning react-dom to 18) fixes it. " * 2,
        ),
        workflow="exploratory",
        depth="moderate",
        categories=frozenset({DBG, MULTI, EXP}),
    ),
    Labelled(
        "list-todos",
        trace(
            "list-todos",
            "List the TODO comments in src/.",
            [grep("TODO", output="src/a.py:3 TODO\nsrc/b.py:9 TODO", batch=0)],
            "There are two: src/a.py line 3 and src/b.py line 9.",
        ),
        workflow="linear",
        depth="minimal",
        categories=frozenset({EXP}),
    ),
    Labelled(
        "api-limit",
        trace(
            "api-limit",
            "Backfill the missing geocodes for the stores table.",
            [
                bash(
                    "psql -c 'SELECT COUNT(*) FROM stores WHERE lat IS NULL'",
                    output="1250",
                    reasoning="First let me count how many rows need geocoding.",
                    batch=0,
                ),
                read("geo/client.py", output="RATE_LIMIT = 50  # per minute", batch=1),
                call(
                    "Write",
                    {"file_path": "scripts/backfill_geo.py", "content": "..."},
                    reasoning="The geocoding API is limited to 50 requests per minute, so the "
                    "script sleeps between batches. Calling it in parallel threads would just "
                    "hit the limit, so I'll keep it sequential.",
                    batch=2,
                ),
                bash("python scripts/backfill_geo.py --dry-run", output="1250 rows", batch=3),
            ],
            "I wrote scripts/backfill_geo.py; a dry run finds 1,250 rows. " * 4,
        ),
        workflow="linear",
        depth="moderate",
        categories=frozenset({DB, MULTI, CPLX}),
        signals=frozenset({"constraint", "pruning"}),
    ),
    Labelled(
        "npm-install-fail",
        trace(
            "npm-install-fail",
            "Install the dependencies and run the build.",
            [
                bash("npm install", error="Exit code 1\nnpm ERR! ERESOLVE", batch=0),
                bash(
                    "npm install --legacy-peer-deps",
                    output="added 812 packages",
                    reasoning="The resolver is strict about peer deps; retrying with "
                    "--legacy-peer-deps.",
                    batch=1,
                ),
                bash("npm run build", output="built in 12.3s", batch=2),
            ],
            "Dependencies are installed (with --legacy-peer-deps because of a peer-dependency "
            "conflict) and the build succeeds. " * 2,
        ),
        workflow="iterative",
        depth="moderate",
        categories=frozenset({SYS}),
        signals=frozenset({"correction"}),
    ),
    Labelled(
        "explain-then-plan",
        trace(
            "explain-then-plan",
            "We want to add multi-tenancy. Where would you start?",
            [
                grep(
                    "class .*Model",
                    output="app/models.py:5\napp/models.py:40",
                    reasoning="Let me break this down: first see which models hold customer "
                    "data, then how requests are scoped, then decide where the tenant id goes.",
                    batch=0,
                ),
                read("app/models.py", output="...", batch=1),
                read("app/middleware.py", output="...", batch=1),
                grep("request.user", output="app/views.py:...", batch=2),
            ],
            "I'd add a `tenant_id` to the five customer models and scope queries in a manager. "
            "A separate database per tenant would isolate data better, but it multiplies "
            "migrations, so I'd avoid it at your size. " * 2,
        ),
        workflow="parallel",
        depth="moderate",
        categories=frozenset({EXP, MULTI, CPLX}),
        signals=frozenset({"plan", "pruning"}),
    ),
]
