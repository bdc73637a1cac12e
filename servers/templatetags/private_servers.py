"""`{% private_servers_offered as offered %}`: whether this platform has a runtime for private
servers, for pages whose views do not say (the workspace's servers page)."""

from django import template

from servers import private

register = template.Library()


@register.simple_tag
def private_servers_offered() -> bool:
    return private.offered()
