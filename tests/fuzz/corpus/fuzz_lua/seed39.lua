return function(r) return (r.user_id:gsub('(%w)(%w)', '%2%1')) end
