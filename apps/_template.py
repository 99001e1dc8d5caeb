"""The shared page for every Lyra dashboard: a dark Bootstrap template whose navigation lists
only the apps the signed-in user's role may open, the user's name and role, and a sign-out
link. Apps call :func:`page` from their ``create_app()``; see ``apps/README.md``.

The template loads nothing from the internet (no web fonts, no CDN), so it renders offline and
under the proxy's Content-Security-Policy.
"""

from __future__ import annotations

import logging

import panel as pn

from lyra.auth.panel_auth import current_principal, served_apps

# Bokeh configures the root logger; take it back (STYLE: dashboards).
logging.basicConfig(level=logging.INFO, force=True)

ACCENT = "#4f8cc9"


def nav_links(current_route: str = "") -> str:
    """Markdown links to the apps the current user may open (none outside ``lyra serve``)."""
    who = current_principal()
    if who is None:
        return ""
    lines = []
    for spec in served_apps():
        if who.can(spec.requires):
            marker = "**" if spec.route == current_route else ""
            lines.append(f"- {marker}[{spec.title}](/{spec.route}){marker}")
    return "\n".join(lines) or "_No dashboards for your role._"


def page(title: str, main: pn.viewable.Viewable, *, route: str) -> pn.template.BootstrapTemplate:
    """Wrap ``main`` in the shared dark template with role-aware navigation."""
    who = current_principal()
    user_line = f"Signed in as **{who.subject}** ({who.role.value})" if who else "Not signed in"
    sidebar = [
        pn.pane.Markdown("### Dashboards", margin=(0, 10)),
        pn.pane.Markdown(nav_links(route), name="nav", css_classes=["lyra-nav"], margin=(0, 10)),
        pn.layout.Divider(),
        pn.pane.Markdown(user_line, margin=(0, 10)),
        pn.pane.HTML('<a href="/auth/logout" id="lyra-logout">Sign out</a>', margin=(0, 10)),
    ]
    template = pn.template.BootstrapTemplate(
        title=f"Lyra · {title}",
        theme="dark",
        header_background="#1b1f24",
        sidebar=sidebar,
        sidebar_width=240,
    )
    template.main.append(main)
    return template
