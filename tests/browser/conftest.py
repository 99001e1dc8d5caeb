"""Browser tests: Playwright's `expect` waits on a condition with a 5 s default, which a cold
Panel process on a busy 2-core machine can exceed; give it the same ceiling as the pages'
default timeout (a ceiling, not a target: passing tests return as soon as the page agrees)."""

from playwright.sync_api import expect

expect.set_options(timeout=45_000)
