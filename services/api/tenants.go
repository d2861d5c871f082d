package api

import (
	"fmt"
	"net/http"

	"enjin"
	"enjin/services/inventory"
)

type tenantList struct {
	Tenants []inventory.Tenant `json:"tenants"`
}

func (c *call) tenant() enjin.TenantID { return enjin.TenantID(c.path["tenant"]) }

func (a *API) listTenants(c *call) error {
	ts, err := a.store.ListTenants(c.ctx)
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, tenantList{Tenants: nonNil(ts)})
	return nil
}

func (a *API) createTenant(c *call) error {
	b := c.in.(*tenantCreate)
	if enjin.TenantID(b.Name) == enjin.SystemTenant {
		return &apiError{http.StatusConflict, "reserved", fmt.Sprintf("tenant %q is the cloud's own (see POST /v1/system/backups)", b.Name)}
	}
	t, err := a.ring0.CreateTenant(c.ctx, enjin.TenantID(b.Name), b.Metadata)
	if err != nil {
		return err
	}
	a.created(c, "/v1/tenants/"+string(t.ID), t.Version, t)
	return nil
}

func (a *API) getTenant(c *call) error {
	t, err := a.store.GetTenant(c.ctx, c.tenant())
	if err != nil {
		return err
	}
	a.versioned(c, http.StatusOK, t.Version, t)
	return nil
}

func (a *API) deleteTenant(c *call) error {
	if err := a.ring0.DeleteTenant(c.ctx, c.tenant(), c.version); err != nil {
		return err
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

type tokenBody struct {
	Name string `json:"name"`
}

func (b *tokenBody) validate() error {
	if len(b.Name) > 100 {
		return invalid("name: at most 100 bytes")
	}
	return nil
}

type tenantToken struct {
	Tenant enjin.TenantID `json:"tenant"`
	Token  string         `json:"token"`
}

func (a *API) tenantToken(c *call) error {
	if c.tenant() == enjin.SystemTenant {
		return &apiError{http.StatusConflict, "reserved", fmt.Sprintf("tenant %q is the cloud's own: it is given no tenant token", c.tenant())}
	}
	if _, err := a.store.GetTenant(c.ctx, c.tenant()); err != nil {
		return err
	}
	tok, err := a.store.CreateTenantToken(c.ctx, c.tenant(), c.in.(*tokenBody).Name)
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusCreated, tenantToken{Tenant: c.tenant(), Token: tok})
	return nil
}
