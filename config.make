# nginx sources this from auto/make, after the rules of the sources: the rule
# for the check script's header (see config), a dependency of every object.

cat << END                                                    >> $NGX_MAKEFILE

$RATE_GUARD_CHECK_SCRIPT_HEADER:	$ngx_addon_dir/src/lua/embed.sh $ngx_addon_dir/src/lua/check.files \
		$RATE_GUARD_LUA_FILES
	sh $ngx_addon_dir/src/lua/embed.sh -o $RATE_GUARD_CHECK_SCRIPT_HEADER kCheckScriptLua \
		$RATE_GUARD_LUA_FILES

END
