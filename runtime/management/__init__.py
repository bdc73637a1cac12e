"""The management API (`POST /management`): schema, resolvers and the deploy workflow."""
