# Sourced by the bench scripts: what they share.

# hook_token BIN SECRET SOURCE: the token in SOURCE's hook URL for the hook
# secret SECRET, as dockhook itself prints it (`check-config --show-token`).
hook_token() {
	local bin=$1 secret=$2 source=$3
	env -i PATH="$PATH" OWNER=bench DOCKHOOK_TOKEN="$secret" DOCKHOOK_DATA_DIR=/nonexistent \
		"$bin" check-config --show-token |
		sed -n "s#.*/hooks/$source/\([0-9a-f]\{64\}\)\$#\1#p"
}
