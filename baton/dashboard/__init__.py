"""The live dashboard ``baton serve`` shows at ``GET /``: what baton is doing, updated as it happens.

:mod:`~baton.dashboard.view` turns the engine's state into the page's JSON (pure);
:mod:`~baton.dashboard.routes` serves the page, its assets and the server-sent event stream that
carries that JSON. The page itself (``static/``) is plain HTML, CSS and JavaScript shipped in the
package: nothing to build, nothing fetched from elsewhere.
"""

__all__: list[str] = []
