//! `SessionService` and `AccountService`: logging in with a local account, who the caller
//! is, and `can-i` from the same decision every call is checked with.

use std::sync::Arc;

use gitfleet_proto::v1::account_service_server::AccountService;
use gitfleet_proto::v1::session_service_server::SessionService;
use gitfleet_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::auth::{Auth, Caller, ISSUER};

pub struct Sessions {
    auth: Arc<Auth>,
}

impl Sessions {
    pub fn new(auth: Arc<Auth>) -> Self {
        Self { auth }
    }
}

#[tonic::async_trait]
impl SessionService for Sessions {
    async fn create(
        &self,
        req: Request<SessionCreateRequest>,
    ) -> Result<Response<SessionResponse>, Status> {
        let from = req.remote_addr();
        let req = req.into_inner();
        let token = self.auth.login(&req.username, &req.password, from).await?;
        Ok(Response::new(SessionResponse { token }))
    }

    async fn delete(
        &self,
        req: Request<SessionDeleteRequest>,
    ) -> Result<Response<SessionDeleteResponse>, Status> {
        self.auth.revoke_session(&req).await?;
        Ok(Response::new(SessionDeleteResponse {}))
    }

    async fn get_user_info(
        &self,
        req: Request<GetUserInfoRequest>,
    ) -> Result<Response<GetUserInfoResponse>, Status> {
        let who = self.auth.identity(&req).await?;
        let iss = match req.extensions().get::<Caller>() {
            Some(Caller::Token(claims)) => claims.iss.clone(),
            Some(Caller::External { issuer, .. }) => issuer.clone(),
            _ => ISSUER.to_owned(),
        };
        Ok(Response::new(GetUserInfoResponse {
            logged_in: true,
            username: who.subject,
            iss,
            groups: who.groups,
        }))
    }
}

#[tonic::async_trait]
impl AccountService for Sessions {
    async fn can_i(&self, req: Request<CanIRequest>) -> Result<Response<CanIResponse>, Status> {
        let who = self.auth.identity(&req).await?;
        let r = req.get_ref();
        let yes = self
            .auth
            .can(&who, &r.resource, &r.action, &r.subresource)
            .await?;
        Ok(Response::new(CanIResponse {
            value: if yes { "yes" } else { "no" }.to_owned(),
        }))
    }

    async fn update_password(
        &self,
        req: Request<UpdatePasswordRequest>,
    ) -> Result<Response<UpdatePasswordResponse>, Status> {
        let who = self.auth.identity(&req).await?;
        let r = req.get_ref();
        self.auth
            .update_password(&who, &r.name, &r.current_password, &r.new_password)
            .await?;
        Ok(Response::new(UpdatePasswordResponse {}))
    }

    async fn create_token(
        &self,
        req: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let who = self.auth.identity(&req).await?;
        let r = req.get_ref();
        let token = self
            .auth
            .create_api_token(&who, &r.name, r.expires_in, &r.id)
            .await?;
        self.auth
            .audit_change(&req, &who, "accounts", "update", &r.name, "token created")
            .await;
        Ok(Response::new(CreateTokenResponse { token }))
    }

    async fn delete_token(
        &self,
        req: Request<DeleteTokenRequest>,
    ) -> Result<Response<DeleteTokenResponse>, Status> {
        let who = self.auth.identity(&req).await?;
        let r = req.get_ref();
        self.auth.delete_api_token(&who, &r.name, &r.id).await?;
        self.auth
            .audit_change(&req, &who, "accounts", "update", &r.name, "token deleted")
            .await;
        Ok(Response::new(DeleteTokenResponse {}))
    }
}
