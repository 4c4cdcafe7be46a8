"""Hand-labelled reasoning snippets: the text Claude Code writes before a tool call or thinks.

Each entry is ``(text, labels)`` with labels from ``constraint`` (a limitation that shapes the
approach), ``pruning`` (an approach considered and rejected), ``correction`` (Claude adjusts
its own course) and ``plan`` (an explicit multi-step plan). Many are hard negatives: the cue
words appear (``must``, ``instead of``, ``actually``, ``first``) without the behaviour.

``DEV`` was written before the extractor and used while tuning it. ``ROUND1`` was written next,
measured once untouched (recall 0.22 / 0.00 / 0.29 for constraint / pruning / correction: the
first cues had overfit DEV), then used for tuning too. ``ROUND2`` likewise (untouched recall
0.25 / 0.29 / 0.00, plan 0.00). ``HELD_OUT`` was written after that and never used for tuning:
its figures were the honest ones for these hand-written sentences.

No longer the measurement: these sentences were written by hand, and the cues tuned on
them found a third of the signals in real Claude Code text. The extractor is now measured
on real text (``labelled_corpus.py``, ``tests/fixtures/signals/``); the sentences stay as
word material for the prefilter's random-text test.
"""

from __future__ import annotations

C, P, S, L = "constraint", "pruning", "correction", "plan"
Snippet = tuple[str, frozenset[str]]


def _s(text: str, *labels: str) -> Snippet:
    return (text, frozenset(labels))


DEV: list[Snippet] = [
    # --- constraints -------------------------------------------------------------------------
    _s("I can't modify this file without breaking backward compatibility for the v1 clients.", C),
    _s("We need to preserve the existing test coverage while moving these helpers.", C),
    _s("I must avoid changing the public API of `parse_config`, callers in other repos use it.", C),
    _s("The migrations folder is generated, so I shouldn't edit it by hand.", C),
    _s("Since the user asked not to touch the database schema, I'll work around it in code.", C),
    _s("This has to stay compatible with Python 3.8 because the setup.cfg pins it.", C),
    _s("The sandbox has no network access, so pip install won't work here.", C),
    _s("The repository is read-only for me; I'll put the patch in /tmp instead.", C),
    _s("Careful not to reorder the columns: the CSV consumers rely on positional indices.", C),
    _s("The function signature must remain the same since it's registered as a callback.", C),
    _s("psql isn't installed in this container, so I'll query through the Python driver.", C),
    _s("Note that the config loader requires keys to be lowercase.", C),
    _s("The API is rate limited to 10 requests per minute, so I'll batch the calls.", C),
    _s("I don't have permission to write to /etc, so I'll change the user config.", C),
    _s("Keep in mind the tests run against SQLite, which doesn't support ALTER COLUMN.", C),
    _s(
        "The user said to keep the changes minimal, so I'll only fix the off-by-one and "
        "leave the naming alone.",
        C,
    ),
    _s("Both files need to keep the same license header to pass the CI check.", C),
    _s("We cannot drop the `legacy_id` column yet: reports still join on it.", C),
    # --- pruning -----------------------------------------------------------------------------
    _s("Could use Write, but Edit is safer for preserving the file structure.", P),
    _s("I considered rewriting the parser from scratch, but refactoring it is less risky.", P),
    _s("A regex would be fragile here; I'll use the ast module instead.", P),
    _s("Rather than adding another flag, I'll reuse the existing `--verbose` option.", P),
    _s("There's no need to touch the frontend; the bug is entirely in the API handler.", P),
    _s("Mocking the database would hide the real query behaviour, so I'll use the test DB.", P),
    _s("Option A is a global lock, but that serialises every request; option B is better.", P),
    _s("I thought about caching the result, but the data changes every request.", P),
    _s("Running the full test suite would take too long; I'll run only the affected module.", P),
    _s("A recursive solution would blow the stack on deep trees, so I'll iterate.", P),
    _s("Instead of grepping the whole monorepo, I'll search just the services folder.", P),
    _s("Adding a dependency for this is overkill; the standard library has what we need.", P),
    _s("Rewriting the history with a force push is not an option on a shared branch.", P, C),
    _s("Subclassing would work too, but composition keeps the adapter easier to test.", P),
    # --- self-corrections --------------------------------------------------------------------
    _s("Actually, let me read the file first before editing.", S),
    _s("That query didn't work, let me try a different pattern.", S),
    _s("Wait, the test imports from `app.core`, not `app.utils`. Let me fix the import.", S),
    _s(
        "I was wrong about the cause: the timeout comes from the retry loop, not the DNS lookup.", S
    ),
    _s("Hmm, that edit broke the indentation. Let me redo it.", S),
    _s("The command failed because the path has a space. Let me quote it and run it again.", S),
    _s("My previous grep missed the async handlers; searching again with a broader pattern.", S),
    _s("On second thought, the fix belongs in the serializer rather than the view.", S, P),
    _s("Oops, I edited the compiled file in dist/. Reverting that and editing src/ instead.", S),
    _s(
        "The tests still fail with the same error, so my assumption about the fixture was wrong.", S
    ),
    _s("I misread the stack trace; the None comes from `load_user`, not `get_session`.", S),
    _s("That didn't match anything. Let me check the exact spelling of the function name.", S),
    _s("Looks like the file moved to `lib/`. Let me look there instead.", S),
    _s("The build still fails: I missed the second call site. Updating it too.", S),
    # --- plans -------------------------------------------------------------------------------
    _s(
        "First I'll read the schema, then search the code for the table name, and finally "
        "query both tables to compare.",
        L,
    ),
    _s(
        "Plan:\n1. Reproduce the failure\n2. Find where the token is parsed\n3. Fix and add a "
        "regression test",
        L,
    ),
    _s("Here's my approach: run the failing test, read the traceback, then patch the handler.", L),
    _s(
        "I'll start by listing the migrations, then check which ones are applied, and after "
        "that write the new one.",
        L,
    ),
    _s(
        "Steps: 1) find all callers of `send_mail`, 2) add the `reply_to` argument, 3) update "
        "the tests.",
        L,
    ),
    _s(
        "Let me break this down: first understand how sessions are stored, then look at the "
        "expiry logic, then decide where to add the cleanup.",
        L,
    ),
    _s(
        "To do this I'll need to: update the model, write a migration, and adjust the serializer.",
        L,
    ),
    _s(
        "I'll first check the current behaviour, then make the change, then run the tests "
        "again. The public API must stay the same throughout.",
        L,
        C,
    ),
    # --- hard negatives: cue words without the behaviour --------------------------------------
    _s("I'll read the file to see how the config is loaded."),
    _s("Let me check the test output."),
    _s("Now I'll run the tests to verify the fix."),
    _s("The function returns None instead of raising when the key is missing."),
    _s("This is actually a well-structured module; the handlers are in `routes/`."),
    _s("I must say this module is nicely organised."),
    _s("Found it: `MAX_RETRIES` is set to 3 in settings.py."),
    _s("The tests pass now."),
    _s("Searching for all usages of `get_user`."),
    _s("First, let me look at the directory structure."),
    _s("The error says `KeyError: 'id'` on line 42."),
    _s("I need to read the migration to understand the schema."),
    _s("Let me try running the linter on this file."),
    _s("The retry helper exists to avoid duplicate charges."),
    _s("Updating the import in `app/main.py`."),
    _s("The cache is keyed by user id and cleared on logout."),
    _s("Grep found 3 matches in the handlers folder."),
    _s("It uses a regex instead of a parser for the headers."),
    _s("The user wants the button to be blue."),
    _s("Let me see what `build.sh` does."),
    _s("This class wraps the HTTP client and adds retries."),
    _s("Running the migration now."),
    _s("Next, the Edit tool to apply the change."),
    _s("The answer is 42 rows in the orders table."),
    _s("The variable `cannot_retry` is set when the queue is full."),
    _s("I'll check whether the service is running."),
    _s("Reading the remaining two files in parallel."),
    _s("The test named `test_must_fail_without_token` covers this."),
    _s("Looking at git log to see when this changed."),
    _s("The server logs show a 500 on every POST."),
]

ROUND1: list[Snippet] = [
    _s("The CI image only ships Node 18, so optional chaining on imports isn't usable.", C),
    _s("This endpoint is called by the mobile app, which we can't update quickly.", C),
    _s("I have to keep the output format byte-identical; a downstream parser diffs it.", C),
    _s("Changing the hash function would invalidate every stored password, so that's out.", P, C),
    _s("Memory is tight on the worker (512 MB), so loading the whole file at once is risky.", C),
    _s("The lockfile must not change in this PR, per the contributing guide.", C),
    _s("The job has to finish within the 15 minute Lambda timeout.", C),
    _s("I'll avoid `git add -A` since there are unrelated local changes in the tree.", C),
    _s("A full rewrite is tempting, but a targeted fix is easier to review.", P),
    _s("I'll go with a dict lookup; a chain of if/elif would be harder to extend.", P),
    _s("Skipping the ORM here: a raw query is clearer for a one-off report.", P),
    _s("Using threads won't help because the work is CPU-bound; multiprocessing it is.", P),
    _s("There are two ways to do this, patching the client or wrapping it; wrapping is safer.", P),
    _s("I don't think a new table is warranted; a JSON column on `users` is enough.", P),
    _s("Scratch that, the setting is read from the environment, not the file.", S),
    _s("Hmm, no output. The script probably needs the --verbose flag.", S),
    _s("My grep pattern was too narrow; widening it to include `.tsx` files.", S),
    _s("The patch applied to the wrong function. Undoing it.", S),
    _s("I assumed the IDs were integers, but they are UUIDs, so the comparison needs fixing.", S),
    _s("Exit code 127: `jq` is not on PATH. Let me use Python's json module instead.", S, C),
    _s("The previous fix only moved the error. Looking at the caller now.", S),
    _s(
        "My plan: reproduce with a minimal script, bisect the dependency versions, then pin "
        "the one that broke.",
        L,
    ),
    _s(
        "Going step by step:\n1. Check the current index definitions\n2. Run EXPLAIN on the "
        "slow query\n3. Add the missing composite index",
        L,
    ),
    _s(
        "I'll begin by reading the failing test, next trace the fixture setup, and finally "
        "patch whichever factory builds the wrong object.",
        L,
    ),
    _s("Reading `setup.py` to find the package name."),
    _s("The migration adds a nullable column, then backfills it."),
    _s("This function must be the entry point; it's referenced in pyproject."),
    _s("Both tests passed on the first try."),
    _s("The logs rotate daily and are kept for a week."),
    _s("Let me grep for the constant instead."),
    _s("The answer is in the second paragraph of the README."),
    _s("It first validates the payload, then writes it to the queue."),
]

ROUND2: list[Snippet] = [
    _s("The staging database is shared with QA, so I won't run destructive migrations on it.", C),
    _s("Windows users run this script too, which rules out the bash-only `readlink -f`.", C, P),
    _s("We're pinned to Django 3.2 by the hosting provider.", C),
    _s("The file is over 2 GB, so reading it into memory isn't feasible.", C),
    _s("Secrets can't be committed, so the token goes into the .env file which is gitignored.", C),
    _s("The tests depend on a fixed random seed; I have to keep `seed=42` in the fixture.", C),
    _s("The vendor SDK is closed source, so any fix has to happen on our side of the call.", C),
    _s("The linter forbids print statements in library code, so I'll use the logger.", C),
    _s("I could patch the vendored copy, but it would be overwritten on the next sync.", P),
    _s("Going through every file by hand would take ages; a codemod is the right tool.", P),
    _s("Polling every second would hammer the API, so I'll use the webhook instead.", P),
    _s("I weighed a feature flag against a config option and went with the flag.", P),
    _s("Catching the bare Exception would also swallow KeyboardInterrupt, so I'll be specific.", P),
    _s("No point in adding a cache: the lookup is already O(1).", P),
    _s("Hold on, `user_id` is already a string here, so the cast is redundant.", S),
    _s("I got the argument order backwards in that call. Swapping them.", S),
    _s("Nope, same traceback. The problem must be earlier in the pipeline.", S),
    _s("My earlier reading of the config was off: `timeout` is in milliseconds, not seconds.", S),
    _s("The sed command mangled the quotes. Restoring the file from git and using Edit.", S),
    _s("That's the test file, not the implementation. Opening `src/parser.py` instead.", S),
    _s("I jumped to conclusions; the failing assertion is about ordering, not content.", S),
    _s(
        "Approach:\n- add the column\n- backfill in batches\n- switch reads over\n- drop "
        "the old column in a later release",
        L,
    ),
    _s(
        "My next steps are to reproduce it locally, add logging around the retry, and then "
        "compare the timings.",
        L,
    ),
    _s("Step 1 is to find the config loader; step 2 is to make it read the new env var.", L),
    _s("Opening the Makefile to see the build targets."),
    _s("The constraint on the `orders` table enforces positive totals."),
    _s("Here the loop first sorts the list, then removes duplicates."),
    _s("That worked: all 212 tests pass."),
    _s("The function is only called from the CLI entry point."),
    _s("I'll update the changelog as well."),
    _s("Wait times in the queue average 3 seconds according to the dashboard."),
    _s("The team decided last quarter to move to Postgres."),
    _s("It should now print the correct total."),
    _s("Running `npm test` again to confirm."),
    _s("The PR description mentions the API change."),
    _s("Checking the other two call sites for the same pattern."),
]

HELD_OUT: list[Snippet] = [
    _s("Production traffic goes through this function, so the change needs a feature flag.", C),
    _s("I'm limited to the tools in the container: no docker, no compiler.", C),
    _s("The schema is owned by the data team; we only get read access.", C),
    _s("Because the queue guarantees at-least-once delivery, the handler must be idempotent.", C),
    _s("Any change here needs to be reviewed by security, so I'll keep it to a comment.", C),
    _s("The build server times out after 10 minutes, so the test split matters.", C),
    _s("Users on the free plan are capped at 3 projects; the check must stay in place.", C),
    _s("The obvious fix is to bump the library, but that drags in a breaking major.", P),
    _s("Vendoring the package is an option, though it means tracking upstream by hand.", P),
    _s("A decorator would be neat, but the function is called from C code.", P, C),
    _s("Monkeypatching in tests hides the bug; I'd rather inject the clock.", P),
    _s("I'll leave the retries as they are; tuning them isn't part of this fix.", P),
    _s("Between a migration and a data fix script, the script is simpler and reversible.", P),
    _s("Splitting the file is out of scope for this change.", P),
    _s("Ah, I see the problem: I was editing the copy in `build/`.", S),
    _s("That grep returned nothing because the pattern had an unescaped paren.", S),
    _s("The fix I made broke the other test; going back to reconsider.", S),
    _s("Let me re-read the error; I think I misidentified which import fails.", S),
    _s("Correcting my earlier summary: there are three handlers, not two.", S),
    _s("Oh, the env var is spelled DATABASE_URI, not DATABASE_URL. Updating.", S),
    _s("The tests went red after my change, so the mock needs the new argument too.", S),
    _s(
        "Here is how I'll tackle it:\n1. Find the slow query in the logs\n2. Add an index\n"
        "3. Measure again",
        L,
    ),
    _s("Roadmap for this change: schema first, then the API, then the UI.", L),
    _s(
        "I'll do this in three passes: rename the type, fix the compile errors, then clean up "
        "the tests.",
        L,
    ),
    _s("The parser reads the header first, then each record."),
    _s("Opening `routes.py`."),
    _s("The test suite has 212 tests and takes about 40 seconds."),
    _s("This module must have been written before the refactor; it still uses the old names."),
    _s("I'll add a docstring explaining the retry behaviour."),
    _s("It's a plain dict, not a dataclass."),
    _s("Good, the output matches what we expected."),
    _s("The config is loaded once at startup and cached."),
    _s("Let me look at how errors are reported to the user."),
    _s("The function raises ValueError on an empty string, as documented."),
    _s("Two of the three endpoints already validate the payload."),
    _s("Now the build passes on both Python versions."),
]
